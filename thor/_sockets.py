"""Making sockets for :mod:`thor.tcp`: listening (IPv4, IPv6 dual-stack, UNIX) and tuning.

Kept apart from the connection logic: these run once per server or
connection and make system calls only, with no loop and no events.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from typing import Any

__all__ = [
    "UNSENT_LIMIT",
    "limit_unsent",
    "listening_socket",
    "text",
    "tune",
    "unix_listening_socket",
]

# What a connection's kernel send queue may hold beyond the bytes in flight (Linux and
# macOS TCP_NOTSENT_LOWAT).  Without it a send buffer that autotunes to megabytes (4 MiB on
# loopback) takes a whole large response in one send(): a millisecond or more of the
# loop's time per call, and the kernel's memory, even for a client that reads 32 bytes a
# second; 1000 such readers kept the loop busy for seconds (issue 16).  Bytes in flight
# are not counted, so a fast client's throughput does not depend on it; the rest of a
# response waits in the connection's own buffer (by reference: no copy) until it is
# nearly sent.
UNSENT_LIMIT = 128 * 1024


def text(host: str | bytes | None) -> str | None:
    """A host name as text: bytes are IDNA-decoded (hosts may be str or bytes)."""
    return host.decode("idna") if isinstance(host, bytes) else host


def listening_socket(host: str | None, port: int, backlog: int, reuse_port: bool) -> socket.socket:
    if host in (None, "", "*", "::"):
        sock, address = _any_address_socket(port)
    else:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def limit_unsent(sock: socket.socket) -> None:
    """Bound the unsent bytes of ``sock``'s send queue to :data:`UNSENT_LIMIT`, where the
    platform can.  Set on a listening socket, once: Linux copies it to every accepted one."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):  # an old kernel: the send buffer's own limit stays
        sock.setsockopt(socket.IPPROTO_TCP, option, UNSENT_LIMIT)


def _any_address_socket(port: int) -> tuple[socket.socket, Any]:
    """A socket for every address: IPv6 dual-stack if the host has IPv6."""
    if socket.has_ipv6:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            pass  # IPv6 compiled in but disabled in the kernel
        else:
            try:
                # Dual-stack: IPv4 peers appear as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2).
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                sock.close()
            else:
                return sock, ("::", port)
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port)


def _remove_stale_unix_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on (left by a crash)."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # not ours to remove: bind() will fail with EADDRINUSE
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a full backlog says EAGAIN instead of blocking
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except BlockingIOError:
        raise OSError(errno.EADDRINUSE, f"{path}: a server is listening there") from None
    except OSError:
        pass
    else:
        raise OSError(errno.EADDRINUSE, f"{path}: a server is listening there")
    finally:
        probe.close()


def unix_listening_socket(path: str, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _remove_stale_unix_socket(path)
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def tune(sock: socket.socket) -> None:
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Responses are written whole; Nagle would only add latency.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
