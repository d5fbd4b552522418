"""One connection of the HTTP client: a TCP (or TLS) connection plus its sans-IO protocol.

Theory of operation. A ``PooledConnection`` carries one exchange at a time (no pipelining,
as in Thor 0.17). While it carries one, it feeds what it reads to its sans-IO
``ClientConnection`` (``proto``: the framing and the joint state) and hands the resulting
events to the exchange; while it is idle in its pool, anything the
server sends (bytes or EOF) means the server has given up on it or is confused, so the
connection is dropped (RFC 9112 §9.3: a response can only answer a request).

A connection is *retired* exactly once: it then no longer counts against its origin's
``max_server_conn`` and is out of the pool; the socket itself may still be lingering.

Timers. A connection has one timer, for both the read timeout of the exchange it carries and
its idle timeout in the pool, and it is lazy: it may fire early, and then it looks at the
state of the moment and schedules itself again for what is left. So an exchange that starts
or ends on the connection usually schedules and deletes nothing (with thousands of requests
a second, a heap push and a deletion each time cost more than the rare early firing).

Events of the TCP connection it listens to::

    data(bytes)*  [close()]  disconnect()      and pause(bool) for the write side
"""

from __future__ import annotations

import select
from typing import TYPE_CHECKING

import thor.loop
from thor.http.protocol import Event
from thor.http.protocol.client_connection import CLIENT_IDLE, ClientConnection
from thor.tcp import TcpConnection

if TYPE_CHECKING:
    from thor.http.client.exchange import HttpClientExchange
    from thor.http.client.pool import OriginPool

__all__ = ["PooledConnection"]

_TCP_EVENTS = ("data", "close", "disconnect", "pause")


class PooledConnection:
    """A connection to an origin server, owned by an ``OriginPool``."""

    __slots__ = ("exchange", "idle_since", "pool", "proto", "retired", "reused", "tcp", "timer")

    def __init__(self, pool: OriginPool, tcp: TcpConnection) -> None:
        self.pool = pool
        self.tcp = tcp
        self.proto = ClientConnection()
        self.exchange: HttpClientExchange | None = None
        self.timer: thor.loop.ScheduledEvent | None = None  # see "Timers" above
        self.idle_since = 0.0  # when it last went idle in its pool
        self.reused = False  # has carried an exchange before the current one
        self.retired = False
        tcp.on("data", self._on_data)
        tcp.on("close", self._on_close)
        tcp.on("disconnect", self._on_disconnect)
        tcp.on("pause", self._on_write_pause)

    def __repr__(self) -> str:
        state = "retired" if self.retired else "busy" if self.exchange else "idle"
        return f"<PooledConnection {self.tcp.address!r} {state}>"

    # --- what the exchange and the pool call --------------------------------------------------

    @property
    def can_carry_another(self) -> bool:
        """Both messages are complete, keep-alive, nothing buffered (RFC 9112 §9.3)."""
        return not self.retired and self.proto.state is CLIENT_IDLE

    def is_stale(self) -> bool:
        """True if the server closed (or wrote to) this idle connection.

        The FIN of a server's idle timeout may have arrived but not been read yet; one
        zero-timeout poll() tells (readable: a FIN, bytes, or a reset) and saves a request
        from a dead connection. (A peeking recv() told the same, but on a healthy connection
        it raised BlockingIOError: 8.3k instructions a check against 3.2k; callgrind.) TLS
        connections are not checked: the raw bytes could be a harmless TLS record (session
        ticket).
        """
        if self.retired:
            return True
        if getattr(self.tcp, "ssl_object", None) is not None:
            return False
        poller = select.poll()  # made per check: no state kept per idle connection
        try:
            poller.register(self.tcp.socket, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True  # the socket is closed already

    def wake_by(self, when: float) -> None:
        """Make sure the timer fires at ``when`` at the latest (it may fire earlier)."""
        timer = self.timer
        if timer is not None:
            if timer.when <= when:
                return  # it fires first, and reschedules itself for what is left
            timer.delete()
        loop = self.pool.client.loop
        self.timer = loop.schedule(max(0.0, when - loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.retired:
            return
        exchange = self.exchange
        if exchange is not None:
            when = exchange.check_read_timeout()  # may fail the exchange (and retire us)
        elif self in self.pool.idle:
            when = self.idle_since + (self.pool.client.idle_timeout or 0.0)
            if when <= self.pool.client.loop.time():
                self.abort()
                return
        else:
            return
        if when is not None and not self.retired:
            self.wake_by(when)

    def retire(self) -> None:
        """Take this connection out of its pool's count (once); the caller closes it."""
        if not self.retired:
            self.retired = True
            if self.timer is not None:
                self.timer.delete()
                self.timer = None
            self.pool.forget(self)

    def abort(self) -> None:
        """Retire, then close at once."""
        self.exchange = None
        self.proto.close()
        self.retire()
        self.tcp.abort()

    def hand_over(self) -> tuple[TcpConnection, bytes]:
        """After a protocol switch: retire, stop listening to the TCP connection, and return
        it with the bytes read past the response head. It is never pooled again."""
        self.exchange = None
        self.retire()
        self.tcp.remove_listeners(*_TCP_EVENTS)
        return self.tcp, self.proto.take_leftover()

    # --- TCP events ---------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.abort()  # bytes on an idle connection: nothing can be answered by them
            return
        events: list[Event] = self.proto.receive_data(data)
        exchange.response_events(self, events, True)

    def _on_close(self) -> None:
        exchange = self.exchange
        if exchange is None:
            self.abort()  # the server closed an idle connection
            return
        events = self.proto.receive_eof()
        self.retire()
        if events:
            exchange.response_events(self, events, False)
        else:
            exchange.connection_lost(self)
        self.tcp.abort()

    def _on_disconnect(self) -> None:
        exchange = self.exchange
        self.proto.close()
        self.proto.parser.close()  # the socket is gone: free the parser of its own cycle
        self.retire()
        if exchange is not None:
            exchange.connection_lost(self)

    def _on_write_pause(self, paused: bool) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.write_paused(paused)
