"""Reading the PROXY protocol header of an accepted connection, before anything else.

Theory of operation.  A :class:`~thor.tcp.TcpServer` (or ``TlsServer``) given a
:class:`ProxyProtocol` does not hand a new socket on at once: the peer must first be
trusted (``trusted(address)``, else the socket is closed, logged), then send a PROXY
header, v1 or v2 (:mod:`thor.proxy_protocol`, the sans-IO parser), within ``timeout``
seconds.  The header's client address replaces the peer's, and the socket goes on as if
just accepted: to the TLS handshake, or straight to the connection class.

The header is taken from the kernel without reading a byte past it: each time the socket
is readable the reader *peeks* (``MSG_PEEK``) at what is there, feeds it to the parser,
and then consumes with ``recv`` exactly the bytes that belong to the header (all of them
while it is incomplete, so that a partial header does not leave the socket readable for
ever).  What follows the header stays in the kernel's buffer, so a TLS handshake or the
HTTP parser reads it as it would have without a PROXY header: nothing has to be passed on,
and the server's read path is the same whether the option is on or off.

A header that is malformed, a peer that closes first, or the timeout, end the
connection: it is closed (not answered: whoever sent no header may not speak HTTP, and
the bytes after a bad header cannot be trusted to be where they seem), and logged at
warning level with the peer's address and the cause.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import thor.loop
from thor.proxy_protocol import ProxyHeader, ProxyHeaderParser, ProxyProtocolError

__all__ = ["ProxyProtocol", "trust_everyone"]

log = logging.getLogger("thor.tcp")

Accepted = Callable[[socket.socket, Any], None]  # what the server does with a socket


def trust_everyone(address: Any) -> bool:
    """A ``trusted`` that trusts every peer (for a listener only proxies can reach)."""
    return True


class ProxyProtocol:
    """The PROXY protocol option of a server: who may send a header, and how long it may
    take.  ``trusted(address)`` gets the peer's address as ``accept()`` gave it (a tuple
    for IP, a string for a UNIX socket); ``max_v2_length`` bounds a v2 header's
    addresses and TLVs.  One instance may serve several servers."""

    def __init__(
        self,
        trusted: Callable[[Any], bool] = trust_everyone,
        timeout: float = 10.0,
        max_v2_length: int = 4096,
    ) -> None:
        self.trusted = trusted
        self.timeout = timeout
        self.max_v2_length = max_v2_length

    def read_header(
        self,
        sock: socket.socket,
        address: Any,
        loop: thor.loop.Loop,
        accepted: Accepted,
        pending: set[HeaderRead],
    ) -> None:
        """Check the peer, then read its header; ``accepted(sock, client_address)`` once
        read.  ``pending`` holds the reads in progress (a server aborts them at shutdown)."""
        if not self.trusted(address):
            log.warning("PROXY protocol: %r is not a trusted proxy; connection closed", address)
            sock.close()
            return
        reader = HeaderRead(self, sock, address, loop, accepted, pending)
        pending.add(reader)
        reader.start()


class HeaderRead:
    """One connection's header, read on the loop (see the module docstring)."""

    def __init__(
        self,
        option: ProxyProtocol,
        sock: socket.socket,
        address: Any,
        loop: thor.loop.Loop,
        accepted: Accepted,
        pending: set[HeaderRead],
    ) -> None:
        self.sock = sock
        self.address = address
        self.loop = loop
        self.fd = sock.fileno()
        self.parser = ProxyHeaderParser(option.max_v2_length)
        self.accepted = accepted
        self.pending = pending
        self.timer = loop.schedule(option.timeout, self._on_timeout)

    def start(self) -> None:
        self.loop.add_reader(self.fd, self._on_readable)
        # A proxy sends the header with its first packet: it is often here already.
        self._on_readable()

    def _on_readable(self) -> None:
        if self.fd < 0:
            return
        try:
            seen = self.sock.recv(self.parser.room(), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._fail(f"read failed: {error}")
            return
        if not seen:
            self._fail("closed before a complete PROXY header")
            return
        try:
            header = self.parser.feed(seen)
        except ProxyProtocolError as error:
            self._fail(str(error))
            return
        mine = len(seen) - len(self.parser.trailing_data) if header is not None else len(seen)
        try:
            # The peeked bytes are in the kernel's buffer: recv returns exactly these.
            taken = self.sock.recv(mine)
        except OSError as error:
            self._fail(f"read failed: {error}")
            return
        if len(taken) != mine:
            self._fail("the header's bytes changed between peek and read")
        elif header is not None:
            self._succeed(header)

    def _on_timeout(self) -> None:
        self._fail("no complete PROXY header in time")

    def _stop(self) -> None:
        self.timer.delete()
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.fd = -1
        self.pending.discard(self)

    def _fail(self, why: str) -> None:
        self._stop()
        log.warning("PROXY protocol: connection from %r closed: %s", self.address, why)
        self.sock.close()

    def _succeed(self, header: ProxyHeader) -> None:
        self._stop()
        self.accepted(self.sock, header.client or self.address)

    def cancel(self) -> None:
        """Stop and close the socket (the server is shutting down)."""
        self._stop()
        self.sock.close()
