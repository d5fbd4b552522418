"""The exchange's side of an HTTP/2 stream: one ``HttpClientExchange`` carried by a stream of
a multiplexed connection (``thor.http2.client``) instead of a connection of its own.

Theory of operation.  The caller's API and events do not change; what changes is where the
request goes.  ``attach_stream`` opens the stream with the request head; the body chunks the
exchange keeps (``_chunks``, written up to ``_sent``) go out as the peer's windows allow
(RFC 9113 §6.9): what does not fit waits for ``stream_writable``, and the caller is told to
pause as it would be by a full socket.  The response comes back as calls of the connection
(``stream_*``), which this side turns into the usual events.  A response body is delivered
while the caller reads it; under ``res_body_pause(True)`` it is held, and its bytes are not
acknowledged, so the peer's stream window closes (a slow reader holds its window closed).

Retries follow RFC 9113 §8.7: a stream refused (RST_STREAM REFUSED_STREAM) or above a
GOAWAY's last stream id was not processed, so any request on it may go again, at once;
a connection lost under a stream that may have been processed is retried only as
``retry.py`` allows an HTTP/1.1 request.

The methods here read the exchange's own state (declared below) and are mixed into
``HttpClientExchange``; so is the scheduling of a retry, which both carriers use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from thor.http import error
from thor.http.client.phase import ATTACHED, DONE, QUEUED, RESPONDING, SENT, Phase
from thor.http.client.retry import Retries
from thor.http.client.url import IDEMPOTENT_METHODS

if TYPE_CHECKING:
    import thor.loop
    from thor.http.client.client import HttpClient
    from thor.http.client.exchange import HttpClientExchange
    from thor.http.client.url import Origin

__all__ = ["StreamCarried", "StreamOwner"]

Fields = list[tuple[bytes, bytes]]


class StreamOwner(Protocol):
    """What an exchange calls on the HTTP/2 connection carrying it (``thor.http2.client``)."""

    reused: bool

    def open_stream(
        self, exchange: Any, head: tuple[bytes, bytes, bytes, Fields], end: bool
    ) -> int: ...

    def send_data(self, stream_id: int, data: bytes, end: bool) -> int: ...

    def send_trailers(self, stream_id: int, trailers: Fields) -> None: ...

    def consumed(self, stream_id: int, length: int) -> None: ...

    def stream_finished(self, stream_id: int, cancel: bool) -> None: ...


class StreamCarried:
    """Mixed into ``HttpClientExchange``, which provides the state declared here."""

    client: HttpClient
    loop: thor.loop.Loop
    method: bytes
    authority: bytes
    req_target: bytes
    origin: Origin | None
    res_version: bytes
    resent: int
    _phase: Phase
    _headers: Fields
    _upgrade: bool
    _chunks: list[bytes]
    _sent: int
    _pending: int
    _req_done: bool
    _trailers: Fields
    _replayable: bool
    _retries: Retries | None
    _last_activity: float
    _write_paused: bool
    _res_paused: bool
    emit: Callable[..., None]
    forget_listeners: Callable[[], None]
    _fail: Callable[[error.HttpError], None]
    _retry_timer: thor.loop.ScheduledEvent | None
    _stop_timers: Callable[[], None]
    _update_pause: Callable[[], None]

    stream_conn: StreamOwner | None = None  # the HTTP/2 connection carrying this exchange
    stream_id = 0
    _offset = 0  # bytes of _chunks[_sent] already sent on this stream
    _stream_ended = False  # END_STREAM sent
    _held: list[tuple[bytes, int]] | None = None  # response data held while paused
    _res_trailers: Fields = []  # never mutated
    _res_ended = False  # the response ended while its data was held

    def attach_stream(self, conn: StreamOwner) -> None:
        """An HTTP/2 connection carries this exchange: open its stream and send what is
        ready of the request."""
        if self._upgrade or self.method == b"CONNECT":
            # An HTTP/2 stream cannot be handed over (RFC 9113 §8.6; CONNECT needs its own
            # tunnel semantics, §8.5, which this client does not offer).
            self._fail(error.ConnectError("cannot switch protocols or CONNECT over HTTP/2"))
            return
        self.stream_conn = conn
        self._phase = ATTACHED
        self._last_activity = self.loop.time()
        self._offset = 0
        # A request complete already (no body) ends the stream with its HEADERS frame.
        end = self._stream_ended = self._req_done and not self._chunks and not self._trailers
        head = (self.method, self.authority, self.req_target, self._headers)
        try:
            self.stream_id = conn.open_stream(self, head, end)
        except error.HttpError as err:
            self.stream_conn = None
            self._fail(err)
            return
        self._phase = SENT
        self.flush_stream()

    def flush_stream(self) -> None:
        """Send what the peer's windows take of the request (also when they open)."""
        conn = self.stream_conn
        if conn is None or self._stream_ended or self._phase is DONE:
            return
        sid, chunks = self.stream_id, self._chunks
        last = len(chunks) - 1
        while self._sent <= last:
            chunk = chunks[self._sent]
            piece = chunk[self._offset :] if self._offset else chunk
            end = self._req_done and not self._trailers and self._sent == last
            sent = conn.send_data(sid, piece, end)
            self._pending -= sent
            if sent < len(piece):
                self._offset += sent
                break
            self._offset = 0
            self._sent += 1
            self._stream_ended = end
        else:
            if self._req_done and not self._stream_ended:
                self._stream_ended = True
                if self._trailers:
                    conn.send_trailers(sid, self._trailers)
                else:
                    conn.send_data(sid, b"", True)
        if not self._replayable and self._sent:
            del chunks[: self._sent]
            self._sent = 0
        self._update_pause()

    # --- what the connection calls ------------------------------------------------------

    def stream_writable(self, paused: bool | None = None) -> None:
        """The peer's window opened (or, with ``paused``, the transport's buffer crossed a
        water mark)."""
        if paused is not None:
            self._write_paused = paused
            if paused:
                self._update_pause()
                return
        self.flush_stream()

    def stream_informational(self, status: bytes, phrase: bytes, fields: Fields) -> None:
        self._last_activity = self.loop.time()
        self.emit("response_nonfinal", status, phrase, fields)

    def stream_response(self, status: bytes, phrase: bytes, fields: Fields) -> None:
        self._last_activity = self.loop.time()
        self._phase = RESPONDING
        self.res_version = b"2"
        self.emit("response_start", status, phrase, fields)

    def stream_data(self, data: bytes, flow_length: int) -> None:
        self._last_activity = self.loop.time()
        if self._res_paused:
            if self._held is None:
                self._held = []
            self._held.append((data, flow_length))
            return
        self.emit("response_body", data)
        conn = self.stream_conn
        if conn is not None:  # (a listener may have cancelled)
            conn.consumed(self.stream_id, flow_length)

    def stream_trailers(self, fields: Fields) -> None:
        self._res_trailers = fields

    def stream_end(self) -> None:
        """The response is complete (END_STREAM)."""
        if self._held:
            self._res_ended = True
            return
        conn = self.stream_conn
        if conn is None:
            return
        self._stop_timers()
        self._phase = DONE
        self._chunks.clear()
        self.stream_conn = None
        conn.stream_finished(self.stream_id, not self._stream_ended)
        self.emit("response_done", self._res_trailers)
        self.forget_listeners()

    def stream_failed(self, err: error.HttpError, processed: bool | None) -> None:
        """The stream ended without a response: ``processed`` False if the server says it
        did not process it (RFC 9113 §8.7: refused, or above a GOAWAY's last stream id),
        None if it may have (a connection lost), True if it did (reset by the server)."""
        conn = self.stream_conn
        if conn is None or self._phase is DONE:
            return
        if processed is True or self._phase is RESPONDING:
            self._fail(err)
            return
        client = self.client
        retries = self._retries = self._retries or Retries()
        delay = retries.after_loss(
            received=False,
            written=processed is None,
            replayable=self._replayable,
            idempotent=self.method in IDEMPOTENT_METHODS,
            reused=conn.reused,
            limit=client.retry_limit,
            delay=client.retry_delay,
        )
        if delay is None:
            self._fail(err)
            return
        if processed is None:
            self.resent += 1
        self.stream_conn = None
        self._sent = self._offset = 0
        self._pending = sum(map(len, self._chunks))
        self._write_paused = False
        self._retry(delay)

    def stream_timeout(self, now: float, timeout: float) -> bool:
        """Fail if the server has been silent ``timeout`` seconds while it was its turn."""
        if self._res_paused or not (self._phase is RESPONDING or self._stream_ended):
            self._last_activity = now  # not the server's turn (see check_read_timeout)
            return False
        if now - self._last_activity < timeout:
            return False
        self._fail(error.ReadTimeoutError(f"no data from the server for {timeout}s"))
        return True

    # --- retries, on either carrier ------------------------------------------------------

    def _retry(self, delay: float) -> None:
        # Even an immediate retry runs from a timer, after the loop's next poll: idle
        # connections that died with this one (a server restart) are noticed and dropped
        # before the pool is asked again.
        self._phase = QUEUED
        self._retry_timer = self.loop.schedule(delay, self._requeue)

    def _requeue(self) -> None:
        self._retry_timer = None
        if self._phase is QUEUED and self.origin is not None:
            exchange = cast("HttpClientExchange", self)
            self.client.pool_for(self.origin).acquire(exchange)

    # --- what the exchange's own methods call -------------------------------------------

    def resume_stream(self) -> None:
        """``res_body_pause(False)``: deliver what was held, then acknowledge it."""
        held = self._held
        while held and self.stream_conn is not None and not self._res_paused:
            data, length = held.pop(0)
            self.stream_data(data, length)
        if not held:
            self._held = None
            if self._res_ended and not self._res_paused:
                self.stream_end()

    def leave_stream(self) -> None:
        """The exchange ends (error or cancel): the stream is reset if still open."""
        conn = self.stream_conn
        if conn is not None:
            self.stream_conn = None
            conn.stream_finished(self.stream_id, True)
