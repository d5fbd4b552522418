"""Listening sockets for the gateway's addresses (``HOST:PORT``, ``unix:PATH``, ``fd://N``).

The gateway opens its sockets itself, before it loads apps or forks workers:
a master process hands the same sockets to every worker (they share the
kernel's accept queue), and a socket opened by the master outlives any one
worker, so no connection is refused while workers come and go.
"""

from __future__ import annotations

import socket

from thor.tcp import listening_socket, unix_listening_socket
from thor_gateway.serving.config import Bind, ConfigError

__all__ = ["describe", "open_listener"]


def open_listener(bind: Bind, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking socket for ``bind``; raises :class:`ConfigError`."""
    try:
        if bind.kind == "fd":
            sock = socket.socket(fileno=bind.fd)
            sock.listen(backlog)
        elif bind.kind == "unix":
            sock = _unix(bind.path, backlog)
        else:
            sock = _tcp(bind.host, bind.port, backlog)
    except OSError as error:
        raise ConfigError(f"bind {bind}", error.strerror or str(error)) from None
    sock.setblocking(False)
    return sock


def _tcp(host: str, port: int, backlog: int) -> socket.socket:
    # None, "", "*" and "::" all mean every address, dual-stack (thor.tcp decides).
    return listening_socket(None if host in ("", "*") else host, port, backlog, False)


def _unix(path: str, backlog: int) -> socket.socket:
    return unix_listening_socket(path, backlog)


def describe(sock: socket.socket, tls: bool) -> str:
    """``http://127.0.0.1:8000``, ``https://[::1]:8443`` or ``unix:/run/app.sock``."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    host = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    return f"{'https' if tls else 'http'}://{host}:{address[1]}"
