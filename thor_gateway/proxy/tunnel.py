"""A tunnel: the bytes of a switched connection relayed both ways, after a relayed 101.

Theory of operation.  When a proxied request asked to switch protocols (RFC 9110 §7.8:
WebSocket, or any other ``Upgrade`` token) and the upstream answered 101, both sides stop
speaking HTTP: :class:`~thor_gateway.proxy.relay.ProxiedExchange` relays the 101 head,
takes the client's connection over (``exchange.take_over()``) and gets the upstream's
(the client exchange's ``switched`` event), then hands both to a :class:`Tunnel`, which
moves bytes until either side is done.  Frames are not parsed: the proxy is a pipe, and
the endpoints enforce their own protocol (RFC 6455 §4.1 has the client and the server
check each other, not the intermediaries).

    client <--TcpConnection--> Tunnel <--TcpConnection--> upstream

- **Order.** The bytes that came with each head (``leftover``: a first frame in the same
  packet as the handshake or the 101) go first, then the ``data`` events.
- **Backpressure** is the one rule of docs/tcp.md, applied to each direction: when one
  side's write buffer passes its high water mark (its ``pause(True)`` event), reading
  from the other side stops (``pause(True)``) until the buffer drains (``pause(False)``),
  and the kernel's window stops the sender.  Memory is bounded by the two write buffers
  (``write_high_water`` plus a read each, whatever the size of the transfer).
- **Ending.** An EOF from one side is passed on as a half-close (``shutdown_write``) to
  the other, which may still answer (TCP's half-close, RFC 9293 §3.6); when both sides
  sent EOF the connections close.  When either connection is gone (reset, lost, closed
  after both EOFs), the other is closed after its buffer is flushed.
- **Idle.** No byte either way for ``idle_timeout`` seconds (0: never) closes both; the
  time of the last byte is noted per read and checked by one timer, re-armed to the
  moment the tunnel could first be idle.

States (:class:`TunnelState`)::

    OPEN --EOF from one side--> HALF_CLOSED --EOF from the other--> CLOSED
      \\------------------ gone / idle / close() ----------------------/

``on_close(tunnel)`` is called once, at CLOSED; the counters (``sent``: client to
upstream, ``received``: upstream to client, and the member's ``tunnel_sent`` /
``tunnel_received``) are final then.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import thor.loop
    from thor_gateway.proxy.upstreams import Upstream

__all__ = ["Tunnel", "TunnelState"]

log = logging.getLogger("thor_gateway.proxy")


class TunnelState(enum.Enum):
    OPEN = "open"  # bytes flow both ways
    HALF_CLOSED = "half-closed"  # one side sent EOF; the other may still send
    CLOSED = "closed"  # both connections closed or closing; nothing more moves


# (state, what happened) -> next state; a missing pair is a bug (house style §7, rule 2).
TRANSITIONS: dict[tuple[TunnelState, str], TunnelState] = {
    (TunnelState.OPEN, "eof"): TunnelState.HALF_CLOSED,
    (TunnelState.HALF_CLOSED, "eof"): TunnelState.CLOSED,
    (TunnelState.OPEN, "end"): TunnelState.CLOSED,
    (TunnelState.HALF_CLOSED, "end"): TunnelState.CLOSED,
}

_OPEN, _HALF_CLOSED, _CLOSED = TunnelState.OPEN, TunnelState.HALF_CLOSED, TunnelState.CLOSED

OnClose = Callable[["Tunnel"], None]


class Tunnel:
    """Relays bytes between ``client`` and ``upstream`` (``TcpConnection``s) until done."""

    __slots__ = (
        "client",
        "idle_timeout",
        "last",
        "loop",
        "member",
        "on_close",
        "opened",
        "received",
        "sent",
        "state",
        "timer",
        "upstream",
        "why",
    )

    def __init__(
        self,
        client: Any,
        upstream: Any,
        *,
        loop: thor.loop.Loop,
        idle_timeout: float = 0.0,
        member: Upstream | None = None,
        on_close: OnClose | None = None,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.loop = loop
        self.idle_timeout = idle_timeout
        self.member = member
        self.on_close = on_close
        self.state = _OPEN
        self.sent = 0  # client -> upstream
        self.received = 0  # upstream -> client
        self.opened = self.last = loop.time()
        self.timer: thor.loop.ScheduledEvent | None = None
        self.why = ""  # why it ended, for the log line
        if member is not None:
            # The member's ``active`` count, taken when the request was sent, stays taken
            # while the tunnel is open (least_connections counts open tunnels too) and is
            # given back at CLOSED.
            member.tunnels += 1

    def start(self, client_leftover: bytes = b"", upstream_leftover: bytes = b"") -> None:
        """Relay what came with each head, then listen to both connections."""
        client, upstream = self.client, self.upstream
        client.on("data", self._from_client)
        upstream.on("data", self._from_upstream)
        # One side's write buffer full -> stop reading the other (docs/tcp.md).
        client.on("pause", upstream.pause)
        upstream.on("pause", client.pause)
        client.on("close", self._client_eof)
        upstream.on("close", self._upstream_eof)
        client.on("disconnect", self._client_gone)
        upstream.on("disconnect", self._upstream_gone)
        # Both were handed over reading (the server resumes it; the client hands the
        # connection over as it was, and a 101 has no body that could have paused it).
        upstream.pause(False)
        # The leftovers go after the listeners: a write that fills a buffer must be heard.
        if client_leftover:
            self._from_client(client_leftover)
        if upstream_leftover:
            self._from_upstream(upstream_leftover)
        if not (client.tcp_connected and upstream.tcp_connected):
            # Lost before the switch: its events were heard by HTTP, not by us.
            self.close("a side was gone at the switch")
        elif self.idle_timeout > 0:
            self.timer = self.loop.schedule(self.idle_timeout, self._check_idle)

    # --- bytes ---------------------------------------------------------------------------

    def _from_client(self, data: bytes) -> None:
        size = len(data)
        self.sent += size
        member = self.member
        if member is not None:
            member.tunnel_sent += size
        self.last = self.loop.time()
        self.upstream.write(data)

    def _from_upstream(self, data: bytes) -> None:
        size = len(data)
        self.received += size
        member = self.member
        if member is not None:
            member.tunnel_received += size
        self.last = self.loop.time()
        self.client.write(data)

    # --- ending --------------------------------------------------------------------------

    def _client_eof(self) -> None:
        # The client will send no more: tell the upstream, which may still answer.
        self._eof()
        self.upstream.shutdown_write()

    def _upstream_eof(self) -> None:
        self._eof()
        self.client.shutdown_write()

    def _eof(self) -> None:
        if self.state is not _CLOSED:
            self._move("eof")
            if self.state is _CLOSED:
                self.why = "both sides closed"
                self._closed()

    def _client_gone(self) -> None:
        self.upstream.close()  # flushes what the client sent, then FIN
        self._end("client gone")

    def _upstream_gone(self) -> None:
        self.client.close()
        self._end("upstream gone")

    def _check_idle(self) -> None:
        self.timer = None
        if self.state is _CLOSED:
            return
        quiet = self.loop.time() - self.last
        if quiet >= self.idle_timeout:
            self.close(f"idle for {self.idle_timeout:g}s")
        else:
            self.timer = self.loop.schedule(self.idle_timeout - quiet, self._check_idle)

    def close(self, why: str = "closed by the proxy") -> None:
        """Close both sides (each flushes its buffer first)."""
        self.client.close()
        self.upstream.close()
        self._end(why)

    def _end(self, why: str) -> None:
        if self.state is _CLOSED:
            return
        self._move("end")
        self.why = why
        self._closed()

    def _move(self, event: str) -> None:
        self.state = TRANSITIONS[self.state, event]

    def _closed(self) -> None:
        if self.timer is not None:
            self.timer.delete()
            self.timer = None
        member = self.member
        if member is not None:
            member.active -= 1
            member.tunnels -= 1
        log.info(
            "tunnel to %s ended (%s) after %.1fs: %d bytes up, %d down",
            member.origin if member is not None else "?",
            self.why,
            self.loop.time() - self.opened,
            self.sent,
            self.received,
        )
        if self.on_close is not None:
            self.on_close(self)
