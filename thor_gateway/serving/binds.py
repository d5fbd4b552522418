"""Listening sockets for the gateway's addresses (``HOST:PORT``, ``unix:PATH``, ``fd://N``).

The gateway opens its sockets itself, before it loads apps or forks workers:
a master process hands the same sockets to every worker (they share the
kernel's accept queue), and a socket opened by the master outlives any one
worker, so no connection is refused while workers come and go.

With ``--proxy-protocol`` each HTTP listener reads a PROXY header first
(:func:`proxy_protocol`): from peers of ``--forwarded-allow-ips`` only, within
``--header-timeout``.  :func:`check_proxy_protocol` refuses a trust list that no peer of
some listener could pass (every connection would be closed).
"""

from __future__ import annotations

import socket

from thor.tcp import ProxyProtocol, listening_socket, unix_listening_socket
from thor_gateway.routing.forwarded import ProxyTrust
from thor_gateway.serving.config import Bind, ConfigError, Settings

__all__ = ["check_proxy_protocol", "describe", "open_listener", "proxy_protocol"]


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


def proxy_protocol(settings: Settings) -> ProxyProtocol | None:
    """The HTTP listeners' PROXY protocol option, or None when ``--proxy-protocol`` is off.

    The trust list is ``--forwarded-allow-ips`` whatever ``--proxy-headers`` says: a
    balancer may send PROXY headers without the gateway believing anyone's X-Forwarded-*.
    """
    if not settings.proxy_protocol:
        return None
    try:
        trust = ProxyTrust(settings.forwarded_allow_ips)
    except ValueError as error:
        raise ConfigError("forwarded_allow_ips", str(error)) from None
    return ProxyProtocol(trust.trusts_peer, timeout=settings.header_timeout)


def check_proxy_protocol(settings: Settings) -> None:
    """With ``--proxy-protocol``: a header timeout, and for each kind of HTTP listener
    (TCP, UNIX) a trust list that admits some peer of that kind."""
    if not settings.proxy_protocol:
        return
    if settings.header_timeout <= 0:
        raise ConfigError("proxy_protocol", "needs a --header-timeout above 0")
    trust = ProxyTrust(settings.forwarded_allow_ips)
    ip = trust.everyone or bool(trust.networks)
    for bind in settings.listen_addresses():
        # An inherited descriptor (fd://N, systemd's) may be either kind.
        admitted = {"unix": trust.unix, "tcp": ip}.get(bind.kind, ip or trust.unix)
        if not admitted:
            raise ConfigError(
                "proxy_protocol",
                f"--forwarded-allow-ips admits no peer of {bind}: every connection would be "
                "closed (list the balancer's addresses, or 'unix' for a UNIX socket)",
            )
