"""Listening sockets for the gateway's addresses (``HOST:PORT``, ``unix:PATH``, ``fd://N``).

The gateway opens its sockets itself, before it loads apps or forks workers:
a master process hands the same sockets to every worker (they share the
kernel's accept queue), and a socket opened by the master outlives any one
worker, so no connection is refused while workers come and go.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from thor_gateway.config import Bind, ConfigError

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
    if host in ("", "*"):
        host = "::" if socket.has_ipv6 else "0.0.0.0"
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if family == socket.AF_INET6:
            # "::" serves IPv4 too (dual stack); a specific IPv6 address only itself.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _unix(path: str, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # left over from an earlier run
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def describe(sock: socket.socket, tls: bool) -> str:
    """``http://127.0.0.1:8000``, ``https://[::1]:8443`` or ``unix:/run/app.sock``."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    host = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    return f"{'https' if tls else 'http'}://{host}:{address[1]}"
