"""An open WebSocket on the Thor loop: the sans-IO core fed by a TCP (or TLS) connection.

Theory of operation. A :class:`WebSocket` owns a switched ``TcpConnection`` and a
:class:`~thor.websocket.protocol.Connection`. Bytes from the socket go to the core; its
events become the emitter's events. What the application sends while events are being
delivered is gathered and written once after them, so an echo of a read's messages is one
``write``. Its events, in order::

    message(data)* ping(payload)* pong(payload)* pause(paused)*  [error(err)]  close(code, reason)

- ``message``: a whole message, ``str`` (text) or ``bytes`` (binary).
- ``ping`` / ``pong``: control frames; a ping is answered by the WebSocket itself (§5.5.2).
- ``pause(True)``: more than the write buffer's high-water mark waits to be sent (a slow
  reader at the other end); stop sending until ``pause(False)``. Sends are never refused.
- ``error(err)``: a :class:`WebSocketError` (the peer broke the protocol, a limit was passed,
  the pong did not come); emitted only when somebody listens. ``close`` follows.
- ``close(code, reason)``: once, last, when the socket is gone: the peer's close code (1005 if
  its close frame had none), the code we failed the connection with, or 1006 when the
  connection ended without a closing handshake (§7.1.5).

``pause(True)`` the *method* stops reading (TCP's window then stops the peer); events already
read wait until ``pause(False)``. The closing handshake (§7.1.2): ``close()`` sends a close
frame and waits ``close_timeout`` for the peer's; a peer's close is answered at once. Then a
server closes TCP; a client waits ``close_timeout`` for the server to do it (§7.1.1).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import thor.loop
from thor.events import EventEmitter
from thor.tcp import TcpConnection
from thor.websocket.protocol import (
    BytesMessage,
    CloseReceived,
    Connection,
    ConnectionLost,
    Event,
    Ping,
    Pong,
    ProtocolError,
    TextMessage,
)
from thor.websocket.protocol.state import CAN_SEND, CLOSED, OPEN

__all__ = ["WebSocket", "WebSocketError"]

log = logging.getLogger("thor.websocket")

# §7.4.1: 1006 is never sent; it reports a connection closed without a close frame.
ABNORMAL = 1006
# §7.4.1: 1011, "an unexpected condition": the keepalive pong did not come.
INTERNAL_ERROR = 1011
_UNSET: Any = object()  # a keyword not given: the class attribute applies
# From this payload size a frame's header and payload are written with one gathering sendmsg
# instead of being joined first (a copy of the payload); below it, joining is cheaper.
_GATHER_FROM = 8192


class WebSocketError(Exception):
    """Why a WebSocket ended badly; ``code`` is the close code that says so (§7.4.1)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class WebSocket(EventEmitter):
    """One open WebSocket (see the module docstring for its events and calls)."""

    ping_interval: float | None = 20.0  # seconds between our keepalive pings; None: never
    ping_timeout: float | None = 20.0  # seconds to wait for the pong, then fail with 1011
    close_timeout: float = 10.0  # seconds for the closing handshake and the TCP close

    def __init__(
        self,
        tcp_conn: TcpConnection,
        conn: Connection,
        *,
        loop: thor.loop.Loop | None = None,
        subprotocol: str | None = None,
        ping_interval: float | None = _UNSET,
        ping_timeout: float | None = _UNSET,
        close_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.tcp_conn = tcp_conn
        self.conn = conn
        self.loop = loop or thor.loop.default()
        self.subprotocol = subprotocol
        self.is_client = conn.role.value == "client"
        if ping_interval is not _UNSET:
            self.ping_interval = ping_interval
        if ping_timeout is not _UNSET:
            self.ping_timeout = ping_timeout
        if close_timeout is not None:
            self.close_timeout = close_timeout
        self.closed = False  # the close event was emitted
        self.close_code: int | None = None  # set with the close event
        self.close_reason = ""
        self.bytes_received = 0  # on the wire, frames included
        self.bytes_sent = 0
        self.started = self.loop.time()
        self._out: list[bytes] | None = None  # sends gathered while events are delivered
        self._gather = False  # _out holds a large payload: sendmsg it, do not join it
        self._held: deque[Event] = deque()  # events read while paused
        self._paused = False
        self._fail_code: int | None = None
        self._ping_timer: thor.loop.ScheduledEvent | None = None
        self._pong_timer: thor.loop.ScheduledEvent | None = None
        self._close_timer: thor.loop.ScheduledEvent | None = None
        # Set by an owner that answers messages later (another thread): called instead of
        # failing at once; the owner then calls fail_now() (or close_timeout passes).
        self.defer_failure: Callable[[], None] | None = None
        self._deferred: tuple[int, str] | None = None
        self._deferred_timer: thor.loop.ScheduledEvent | None = None
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_eof)
        tcp_conn.on("disconnect", self._on_disconnect)
        tcp_conn.on("pause", self._on_write_pause)
        self._arm_ping()

    def __repr__(self) -> str:
        return f"<WebSocket {'client' if self.is_client else 'server'} {self.conn.state.name}>"

    def start(self, leftover: bytes) -> None:
        """Feed the bytes that came with the handshake (call once listeners are set)."""
        if leftover:
            self._on_data(leftover)

    # ------------------------------------------------------------------ sending

    @property
    def open(self) -> bool:
        """True while messages may be sent."""
        return self.conn.state in CAN_SEND and not self.closed

    def send_text(self, text: str) -> None:
        """Send a text message (dropped once the WebSocket is closing or closed)."""
        if self.open:
            if len(text) < _GATHER_FROM:
                self._write(self.conn.send_text(text))
            else:
                self._write_parts(self.conn.send_parts(text))

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message (dropped once the WebSocket is closing or closed)."""
        if self.open:
            if len(data) < _GATHER_FROM:
                self._write(self.conn.send_bytes(data))
            else:
                self._write_parts(self.conn.send_parts(bytes(data)))

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (at most 125 bytes); the pong comes as a ``pong`` event."""
        if self.open:
            self._write(self.conn.ping(payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2); ``close`` comes when it is over."""
        conn = self.conn
        if self.closed or conn.state not in CAN_SEND:
            return
        remote = conn.state is not OPEN
        self._write(conn.close(None if remote else code, reason))
        if conn.state is CLOSED:
            self._finish_tcp()
        else:
            self._close_timer = self.loop.schedule(self.close_timeout, self._close_timed_out)

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading, and so delivering events."""
        if paused == self._paused or self.closed:
            return
        self._paused = paused
        self.tcp_conn.pause(paused)
        if not paused and self._held:
            self._dispatch(())

    def abort(self) -> None:
        """Close the TCP connection now, without a closing handshake (close code 1006)."""
        self.tcp_conn.abort()

    def _write(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        out = self._out
        if out is not None:
            out.append(data)
        else:
            self.tcp_conn.write(data)

    def _write_parts(self, parts: list[bytes]) -> None:
        """A frame in pieces (header, large payload): gathered, never joined."""
        self.bytes_sent += sum(map(len, parts))
        out = self._out
        if out is not None:
            out.extend(parts)
            self._gather = True
        else:
            self.tcp_conn.write_many(parts)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ receiving

    def _on_data(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self._dispatch(self.conn.receive_data(data))

    def _on_eof(self) -> None:
        events = self.conn.receive_eof()
        if events:
            self._dispatch(events)  # ConnectionLost: the peer left without a closing handshake
        else:
            self.tcp_conn.close()  # the handshake was over: the server's TCP close (§7.1.1)

    def _dispatch(self, events: list[Event] | tuple[()]) -> None:
        held = self._held
        if held or self._paused:
            held.extend(events)
            if self._paused:
                return
            events = list(held)
            held.clear()
        out: list[bytes] = []
        outer, self._out = self._out, out  # outer: a dispatch this one runs inside of
        try:
            self._deliver(events)
        finally:
            self._out = outer
            if outer is not None:
                outer.extend(out)  # after what the outer dispatch gathered, in order
            elif out:
                if len(out) == 1:
                    self.tcp_conn.write(out[0])
                elif self._gather:
                    self._gather = False
                    self.tcp_conn.write_many(out)  # type: ignore[arg-type]
                else:
                    self.tcp_conn.write(b"".join(out))
        if self.conn.state is CLOSED and outer is None and not self.closed and not self._held:
            self._finish_tcp()

    def _deliver(self, events: list[Event] | tuple[()]) -> None:
        """Emit the events; those after a pause(True) wait in ``_held``."""
        for index, event in enumerate(events):
            cls = event.__class__
            if cls is TextMessage or cls is BytesMessage:
                self.emit("message", event.data)  # type: ignore[attr-defined]
            elif cls is Ping:
                if self.conn.state in CAN_SEND:
                    self._write(self.conn.pong(event.payload))  # type: ignore[attr-defined]
                self.emit("ping", event.payload)  # type: ignore[attr-defined]
            elif cls is Pong:
                self._got_pong()
                self.emit("pong", event.payload)  # type: ignore[attr-defined]
            elif cls is CloseReceived:
                self._peer_closed()
            elif cls is ProtocolError:
                self._protocol_error(event)  # type: ignore[arg-type]
            elif cls is ConnectionLost:
                self.tcp_conn.abort()
            if self._paused and index + 1 < len(events):
                self._held.extend(events[index + 1 :])
                break

    def _peer_closed(self) -> None:
        conn = self.conn
        if conn.state is not CLOSED:  # §5.5.1: answer with a close frame, echoing the code
            self._write(conn.close())

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (§7.1.7): the close frame, then TCP closes."""
        if self.conn.state is CLOSED:
            return
        self._fail_code = code
        self._write(self.conn.fail(code, reason))
        self._error(WebSocketError(code, reason))

    def _protocol_error(self, event: ProtocolError) -> None:
        if self.defer_failure is None:
            self._fail(event.code, event.reason)
        else:
            self._defer_fail(event.code, event.reason)

    def _defer_fail(self, code: int, reason: str) -> None:
        # An owner that hands messages to another thread answers them late: it calls
        # fail_now() once they are answered, so the replies go out before the close frame.
        self._deferred = (code, reason)
        self._deferred_timer = self.loop.schedule(self.close_timeout, self.fail_now)
        assert self.defer_failure is not None
        self.defer_failure()

    def fail_now(self) -> None:
        """Fail the connection for the protocol error ``defer_failure`` announced."""
        deferred, self._deferred = self._deferred, None
        if deferred is None or self.closed:
            return
        if self._deferred_timer is not None:
            self._deferred_timer.delete()
            self._deferred_timer = None
        self._fail(*deferred)
        self._finish_tcp()

    def _error(self, err: WebSocketError) -> None:
        log.debug("websocket failed: %s", err)
        if self.listeners("error"):
            self.emit("error", err)

    def _finish_tcp(self) -> None:
        """The closing handshake is over (or failed): close TCP (§7.1.1)."""
        tcp = self.tcp_conn
        if self.is_client and self._fail_code is None:
            # The server closes first; abort if it does not within the close timeout.
            if self._close_timer is None:
                self._close_timer = self.loop.schedule(self.close_timeout, tcp.abort)
            return
        tcp.close()

    def _close_timed_out(self) -> None:
        self._close_timer = None
        log.debug("no close frame within %ss", self.close_timeout)
        self.tcp_conn.abort()

    def _on_write_pause(self, paused: bool) -> None:
        self.emit("pause", paused)

    def _on_disconnect(self) -> None:
        if self.closed:
            return
        self.closed = True
        for timer in (self._ping_timer, self._pong_timer, self._close_timer, self._deferred_timer):
            if timer is not None:
                timer.delete()
        self._ping_timer = self._pong_timer = self._close_timer = self._deferred_timer = None
        if self._held:  # a paused reader's messages are dropped with the connection
            self._held.clear()
        conn = self.conn
        if self._fail_code is not None:
            code, reason = self._fail_code, ""
        elif conn.close_code is not None:
            code, reason = conn.close_code, conn.close_reason
        else:
            code, reason = ABNORMAL, ""
        self.close_code, self.close_reason = code, reason
        self.emit("close", code, reason)

    # ------------------------------------------------------------------ keepalive

    def _arm_ping(self) -> None:
        if self.ping_interval:
            self._ping_timer = self.loop.schedule(self.ping_interval, self._send_keepalive)

    def _send_keepalive(self) -> None:
        self._ping_timer = None
        if not self.open:
            return
        self._write(self.conn.ping(b"thor"))
        if self.ping_timeout and self._pong_timer is None:
            self._pong_timer = self.loop.schedule(self.ping_timeout, self._pong_timed_out)
        self._arm_ping()

    def _got_pong(self) -> None:
        timer = self._pong_timer
        if timer is not None:
            timer.delete()
            self._pong_timer = None

    def _pong_timed_out(self) -> None:
        self._pong_timer = None
        if self.closed or self.conn.state is CLOSED:
            return
        # websockets and uvicorn close with 1011 here; the peer may be gone, so abort after.
        self._fail_code = INTERNAL_ERROR
        self.tcp_conn.write(self.conn.fail(INTERNAL_ERROR, "keepalive ping timeout"))
        self._error(WebSocketError(INTERNAL_ERROR, "keepalive ping timeout"))
        self.tcp_conn.close()


def options_of(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword arguments into the core's limits and the WebSocket's timers."""
    limits = {}
    timers = {}
    for name, value in kwargs.items():
        if name in ("max_message_size", "max_frame_size", "max_decompressed_size"):
            limits[name] = value
        elif name in ("ping_interval", "ping_timeout", "close_timeout"):
            timers[name] = value
        else:
            raise TypeError(f"unexpected keyword argument {name!r}")
    return limits, timers
