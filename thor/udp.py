"""UDP endpoints on the loop.

A :class:`UdpEndpoint` owns one datagram socket.  Events::

    datagram(data: bytes, host: str, port: int)*
    socket_error(kind: str, errno: int, message: str)   at any time

Theory of operation.  The socket is made by :meth:`UdpEndpoint.bind`, or by
the first :meth:`UdpEndpoint.send` if the endpoint was never bound (the
kernel then picks an ephemeral port, and replies to it are received too).
Its family follows the address: IPv4, IPv6, or for ``None``/``""``/``"::"``
a dual-stack IPv6 socket on every address, whose IPv4 peers are reported
as plain dotted quads (the ``::ffff:`` prefix, RFC 4291 §2.5.5.2, removed).

The endpoint starts *reading* as soon as its socket exists; ``pause(True)``
stops that (the kernel then drops what overflows its buffer: it is UDP).
Thor 0.17 started paused, so 0.17 code calls ``pause(False)`` first, which
is harmless here.

``bind`` to an IP literal is synchronous and raises :class:`OSError` on
failure; ``bind`` to a name resolves it with :mod:`thor.dns` first and
reports failure as ``socket_error('gai', ...)`` or ``socket_error('socket', ...)``.
``send`` never blocks: a datagram the kernel cannot take right now is
dropped (``EAGAIN``), as a router would drop it; other failures are
``socket_error('socket', errno, message)``.  A datagram longer than
``max_dgram`` raises :class:`ValueError` at once.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

import thor.dns
import thor.loop
from thor.events import EventEmitter

__all__ = ["UdpEndpoint"]

_WILDCARDS = (None, "", "*", "::")


def _text(host: str | bytes | None) -> str | None:
    return host.decode("idna") if isinstance(host, bytes) else host


def _literal(host: str, port: int) -> tuple[socket.AddressFamily, Any] | None:
    """(family, socket address) for an IP literal, None for a name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.version == 6:
        return socket.AF_INET6, (str(address), port, 0, 0)
    return socket.AF_INET, (str(address), port)


class UdpEndpoint(EventEmitter):
    """Sends and receives datagrams.  See the module docstring for its events."""

    # The largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
    max_dgram = 65507
    # Large enough for any datagram, so that none is silently truncated.
    recv_bufsize = 65536
    # Datagrams read per readable event, so that a flood cannot starve the loop.
    read_batch = 64

    def __init__(self, loop: thor.loop.Loop | None = None) -> None:
        super().__init__()
        self.loop = loop or thor.loop.default()
        self.sock: socket.socket | None = None
        self.host: str | None = None  # the bound address, once bound
        self.port: int | None = None
        self._dual_stack = False
        self._paused = False
        self._closed = False

    # ------------------------------------------------------------- binding

    def bind(self, host: str | bytes | None, port: int) -> None:
        """Receive on ``host``:``port`` (``port=0``: any free port; read ``self.port``)."""
        if self.sock is not None:
            raise RuntimeError("this endpoint already has a socket")
        name = _text(host)
        if name in _WILDCARDS:
            if socket.has_ipv6:
                self._bind_to(socket.AF_INET6, ("::", port, 0, 0), dual_stack=True)
            else:
                self._bind_to(socket.AF_INET, ("0.0.0.0", port))
            return
        assert name is not None
        literal = _literal(name, port)
        if literal is not None:
            self._bind_to(*literal)
            return
        thor.dns.lookup(
            name, port, self._on_bind_resolved, loop=self.loop, socktype=socket.SOCK_DGRAM
        )

    def _on_bind_resolved(self, results: list[thor.dns.DnsResult] | Exception) -> None:
        if self._closed:
            return
        if isinstance(results, Exception):
            self.emit("socket_error", "gai", getattr(results, "errno", 0) or 0, str(results))
            return
        family, _, _, _, address = results[0]
        try:
            self._bind_to(family, address)
        except OSError as error:
            self._error("socket", error)

    def _bind_to(
        self, family: socket.AddressFamily, address: Any, dual_stack: bool = False
    ) -> None:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
            sock.bind(address)
        except BaseException:
            sock.close()
            raise
        self._dual_stack = dual_stack
        self._adopt(sock)
        bound = sock.getsockname()
        self.host, self.port = bound[0], bound[1]

    def _adopt(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        if not self._paused:
            self.loop.add_reader(sock.fileno(), self._on_readable)

    # ------------------------------------------------------------- sending

    def send(self, datagram: bytes, host: str | bytes, port: int) -> None:
        """Send ``datagram`` to ``host``:``port`` (a name is resolved first)."""
        if len(datagram) > self.max_dgram:
            raise ValueError(f"datagram of {len(datagram)} bytes > max_dgram ({self.max_dgram})")
        if self._closed:
            return
        name = _text(host)
        assert name is not None
        literal = _literal(name, port)
        if literal is not None:
            self._send_to(datagram, *literal)
            return

        def resolved(results: list[thor.dns.DnsResult] | Exception) -> None:
            if self._closed:
                return
            if isinstance(results, Exception):
                self.emit("socket_error", "gai", getattr(results, "errno", 0) or 0, str(results))
                return
            usable = [r for r in results if self._can_reach(r[0])] or results
            self._send_to(datagram, usable[0][0], usable[0][4])

        thor.dns.lookup(name, port, resolved, loop=self.loop, socktype=socket.SOCK_DGRAM)

    def _can_reach(self, family: int) -> bool:
        sock = self.sock
        if sock is None or sock.family == family:
            return True
        return self._dual_stack and family == socket.AF_INET

    def _send_to(self, datagram: bytes, family: socket.AddressFamily, address: Any) -> None:
        if self.sock is None:
            self._adopt(socket.socket(family, socket.SOCK_DGRAM))  # the kernel binds it
        sock = self.sock
        assert sock is not None
        if sock.family != family:
            if not self._can_reach(family):
                code = errno.EAFNOSUPPORT
                self.emit("socket_error", "socket", code, f"{os.strerror(code)}: {address[0]}")
                return
            address = (f"::ffff:{address[0]}", address[1], 0, 0)  # IPv4 on a dual-stack socket
        try:
            sock.sendto(datagram, address)
        except (BlockingIOError, InterruptedError):
            pass  # no room in the kernel: drop it, as the network may
        except OSError as error:
            self._error("socket", error)

    # ------------------------------------------------------------- reading

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) delivering datagrams."""
        if paused == self._paused:
            return
        self._paused = paused
        if self.sock is not None:
            if paused:
                self.loop.remove_reader(self.sock.fileno())
            else:
                self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(self.read_batch):
            sock = self.sock
            if sock is None or self._paused:
                return
            try:
                data, address = sock.recvfrom(self.recv_bufsize)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. an ICMP error queued on the socket
                self._error("socket", error)
                return
            self.emit("datagram", data, self._peer_host(address[0]), address[1])

    def _peer_host(self, host: str) -> str:
        if self._dual_stack and host.startswith("::ffff:"):
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
            if mapped is not None:
                return str(mapped)
        return host

    # ------------------------------------------------------------- closing

    def shutdown(self) -> None:
        """Close the socket; nothing more is sent or received."""
        self._closed = True
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def _error(self, kind: str, error: OSError) -> None:
        self.emit("socket_error", kind, error.errno or 0, error.strerror or str(error))
