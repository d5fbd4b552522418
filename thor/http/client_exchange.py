"""HttpClientExchange: one request and its response, over the client's pooled connections.

Events, in order (a grammar; ``error`` is terminal and may come at any point, ``pause`` at
any point before the request is done)::

    exchange = *response_nonfinal response_start *response_body response_done
             / ... error
    pause(bool) : stop/resume calling request_body (the server is not reading it)

``cancel()`` ends an exchange with no further event.

Theory of operation. ``request_start`` normalises the request and asks the origin's pool for
a connection. The request head is written once the framing is known: at the first
``request_body`` (then a body without Content-Length is chunked) or at ``request_done``
(then there is no body), or at once when the request says ``Expect: 100-continue``.

Body chunks are kept until written; up to ``retry_body_limit`` bytes are also kept after
writing, so that the request can be replayed on another connection. Each *attempt* (one
connection) starts from scratch with a fresh ``RequestWriter``; the retry rules are in
``_retry_delay`` and docs/http-client.md.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from thor.events import EventEmitter
from thor.http import error
from thor.http.client_url import parse_url, prepare_headers, to_bytes, with_connection_options
from thor.http.headers import RawHeaderListType
from thor.http.protocol import Body, End, Event, Framing, Invalid, RequestWriter, ResponseHead
from thor.memo import Memo

if TYPE_CHECKING:
    import thor.loop
    from thor.http.client import HttpClient
    from thor.http.client_connection import ClientConnection
    from thor.http.client_pool import Origin

__all__ = ["HttpClientExchange"]

# RFC 9110 §9.2.2.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})
_STATUS = {code: b"%d" % code for code in range(100, 600)}
# Unsent request body held for an exchange that has no connection (or waits for 100
# Continue) before it asks its caller to pause.
PENDING_HIGH_WATER = 256 * 1024
# Bytes above which parts are written separately rather than joined (joining copies).
_JOIN_LIMIT = 16 * 1024
# Requests without a body, serialized: (method, target, *fields) -> bytes.
_BODILESS_MAX = 512
_BODILESS: Memo[tuple[bytes, ...] | tuple[object, ...], bytes] = Memo(_BODILESS_MAX)
_BODILESS_SIZE = 2048
# The writer of an exchange whose request came from _BODILESS: in the state its own writer
# would have reached (complete, keep-alive), shared, and never written to again.
_BODILESS_SENT = RequestWriter()
_BODILESS_SENT.start(b"GET", b"/", [], has_body=False)
_BODILESS_SENT.end([])
# Retries that cost nothing (nothing of the request was written yet) are still bounded.
_MAX_FREE_RETRIES = 3


class Phase(enum.Enum):
    NEW = "new"  # request_start not called yet
    QUEUED = "queued"  # waiting for a connection (or for a retry)
    ATTACHED = "attached"  # on a connection
    DONE = "done"  # response_done, error or cancel: no more events


class Continue(enum.Enum):
    """Where the request body stands with respect to ``Expect: 100-continue``."""

    NONE = "none"  # no expectation: the body goes as it comes
    WAITING = "waiting"  # head sent, body held back until 100 or the timeout
    GO = "go"  # 100 received (or waited long enough): send the body
    REFUSED = "refused"  # a final response came first: never send the body


# Module-level aliases for the hot paths: an enum member lookup (Phase.DONE) costs several
# times a global's in CPython 3.11.
_NEW, _QUEUED, _ATTACHED, _DONE = Phase.NEW, Phase.QUEUED, Phase.ATTACHED, Phase.DONE
_C_NONE, _C_WAITING, _C_GO, _C_REFUSED = (
    Continue.NONE,
    Continue.WAITING,
    Continue.GO,
    Continue.REFUSED,
)
_F_NONE, _F_TUNNEL = Framing.NONE, Framing.TUNNEL


class HttpClientExchange(EventEmitter):
    """One HTTP request/response; see the module docstring for its events."""

    # Defaults, as class attributes: an instance sets only what changes. An exchange is made
    # per request, and assigning ~40 attributes in __init__ cost as much as parsing a URL.
    method = b""
    uri = b""
    req_hdrs: RawHeaderListType = []  # as given by the caller (normalised); never mutated
    req_target = b""
    authority = b""
    origin: Origin | None = None
    res_version = b""
    conn: ClientConnection | None = None
    _phase = Phase.NEW
    # The request, as the caller gives it.
    _headers: RawHeaderListType = []  # what is sent; never mutated
    _expect_continue = False
    _has_body: bool | None = None
    _body_total = 0
    _replayable = True
    _req_done = False
    _trailers: RawHeaderListType = []  # never mutated
    # The current attempt.
    _writer: RequestWriter  # a new one per attempt
    _head_sent = False
    _sent = 0  # index in _chunks of the first chunk not written on this attempt
    _pending = 0  # bytes of _chunks not written on this attempt
    _end_sent = False
    _continue = Continue.NONE
    _got_bytes = False
    _started = False
    _keep_alive = False
    # Retries and timers.
    resent = 0  # public: times the request was written again after a connection died
    _attempts = 0
    _stale_retried = False
    _free_retries = 0
    _retry_timer: thor.loop.ScheduledEvent | None = None
    _continue_timer: thor.loop.ScheduledEvent | None = None
    _last_activity = 0.0
    # Flow control.
    _paused = False  # what the caller was last told
    _write_paused = False
    _res_paused = False

    def __init__(self, client: HttpClient) -> None:
        super().__init__()
        self.client = client
        self.loop: thor.loop.Loop = client.loop
        self.preserve_host: bool = client.preserve_host
        self._chunks: list[bytes] = []

    def __repr__(self) -> str:
        return f"<HttpClientExchange {self.method!r} {self.uri!r} {self._phase.value}>"

    # --- the caller's side: the request ------------------------------------------------------

    def request_start(
        self,
        method: bytes | str,
        uri: bytes | str,
        req_hdrs: list[tuple[bytes | str, bytes | str]],
        *,
        preserve_host: bool | None = None,
    ) -> None:
        """Start the request; ``uri`` is absolute (http or https)."""
        if self._phase is not _NEW:
            raise error.OutputStateError("request_start() called twice")
        if preserve_host is not None:
            self.preserve_host = preserve_host
        client = self.client
        try:
            self.method = method = (
                method if method.__class__ is bytes else to_bytes(method, "ascii")
            )
            if uri.__class__ is not bytes:
                if isinstance(uri, str) and not uri.isascii():
                    raise error.UrlError(
                        "non-ASCII URI: percent-encode it (and IDNA-encode the host)"
                    )
                uri = to_bytes(uri, "ascii")
            self.uri = uri
            url = parse_url(uri)
            if req_hdrs:
                self.req_hdrs, self._headers, self._expect_continue = prepare_headers(
                    req_hdrs, url.authority, self.preserve_host, bool(client.idle_timeout)
                )
            else:  # what prepare_headers gives for no fields, without its loop
                self.req_hdrs = []
                self._headers = with_connection_options(
                    [(b"Host", url.authority)], False, bool(client.idle_timeout)
                )
            if method == b"CONNECT":
                raise error.UrlError("CONNECT is not supported by the HTTP client")
        except error.HttpError as err:
            # Reported on the next loop iteration, never from inside request_start (whose
            # caller may not be ready for it); calls until then are ignored.
            self._phase = _DONE
            self.loop.call_soon(self.emit, "error", err)
            return
        self.origin = origin = (url.scheme, url.host, url.port)
        self.authority = url.authority
        self.req_target = url.target
        self._phase = _QUEUED
        pool = client._pools.get(origin)
        (pool or client._pool_for(origin)).acquire(self)

    def request_body(self, chunk: bytes) -> None:
        """Send ``chunk`` of the request body (call it again after a ``pause(False)``)."""
        if self._phase is _DONE or self._req_done or not chunk:
            return
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        self._chunks.append(chunk)
        self._pending += len(chunk)
        self._body_total += len(chunk)
        if self._replayable and self._body_total > self.client.retry_body_limit:
            # Too big to keep for a replay: from now on chunks are dropped once written.
            self._replayable = False
            del self._chunks[: self._sent]
            self._sent = 0
        if self._phase is _ATTACHED:
            self._flush()
        self._update_pause()

    def request_done(self, trailers: list[tuple[bytes | str, bytes | str]] | None = None) -> None:
        """The request is complete (``trailers`` go after a chunked body)."""
        if self._phase is _DONE or self._req_done:
            return
        self._req_done = True
        if trailers:
            self._trailers = [(to_bytes(n, "latin-1"), to_bytes(v, "latin-1")) for n, v in trailers]
        if self._phase is _ATTACHED:
            self._flush()

    def res_body_pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading the response from the server."""
        self._res_paused = paused
        conn = self.conn
        if conn is not None:
            conn.tcp.pause(paused)
            if not paused:
                self._last_activity = self.loop.time()

    def cancel(self) -> None:
        """Abandon the exchange: its connection is closed, and no more events are emitted."""
        if self._phase is _DONE:
            return
        conn = self.conn
        self._finish()
        self.forget_listeners()
        if conn is not None:
            conn.abort()

    # --- writing the request ------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what the current connection can take of the request."""
        conn = self.conn
        assert conn is not None
        if self._has_body is None:
            if self._chunks:
                self._has_body = True
            elif self._req_done:
                self._has_body = False
            elif self._expect_continue:
                self._has_body = True
            else:
                return  # the framing is not known yet (see the module docstring)
        if self._has_body is False and not self._head_sent and not self._expect_continue:
            self._send_bodiless(conn)
            return
        parts: list[bytes] = []
        try:
            if not self._head_sent:
                self._start_request(conn, parts)
            if self._continue is _C_NONE or self._continue is _C_GO:
                self._frame_body(parts)
        except error.HttpError as err:
            self._fail(err)
            return
        if parts:
            self._last_activity = self.loop.time()
            tcp = conn.tcp
            if len(parts) == 1:
                tcp.write(parts[0])
            elif sum(map(len, parts)) <= _JOIN_LIMIT:
                tcp.write(b"".join(parts))
            else:
                for part in parts:
                    tcp.write(part)

    def _send_bodiless(self, conn: ClientConnection) -> None:
        """Write a request without a body: its bytes depend only on the method, the target
        and the fields, so they are remembered (a proxy or a fan-out sends the same few
        requests again and again, and framing them is most of the cost of sending)."""
        key = (self.method, self.req_target, *self._headers)
        data = _BODILESS.get(key)
        if data is None:
            writer = self._writer
            try:
                data = writer.start(self.method, self.req_target, self._headers, has_body=False)
                data += writer.end(self._trailers)
            except error.HttpError as err:
                self._fail(err)
                return
            # Only the usual case, and only small requests: bounded memory, and requests with
            # large fields (cookies, tokens) are rarely repeated anyway.
            if writer.complete and writer.keep_alive and len(data) <= _BODILESS_SIZE:
                _BODILESS.put(key, data)
        else:
            self._writer = _BODILESS_SENT
        self._head_sent = self._end_sent = True
        conn.parser.expect(self.method)  # the response is framed by it
        self._last_activity = self.loop.time()
        conn.tcp.write(data)

    def _start_request(self, conn: ClientConnection, parts: list[bytes]) -> None:
        parts.append(
            self._writer.start(self.method, self.req_target, self._headers, has_body=self._has_body)
        )
        self._head_sent = True
        conn.parser.expect(self.method)  # the response is framed by it
        if self._expect_continue and self._writer.framing is not _F_NONE:
            # RFC 9110 §10.1.1: wait for 100 (or a final response) before the body, but not
            # indefinitely: the server may not know the expectation.
            self._continue = _C_WAITING
            self._continue_timer = self.loop.schedule(
                self.client.expect_continue_timeout, self._go_ahead
            )

    def _frame_body(self, parts: list[bytes]) -> None:
        writer = self._writer
        chunks = self._chunks
        if len(chunks) > self._sent:
            parts.extend([writer.body(chunks[i]) for i in range(self._sent, len(chunks))])
        if self._replayable:
            self._sent = len(chunks)
        else:
            chunks.clear()
            self._sent = 0
        self._pending = 0
        if self._req_done and not self._end_sent:
            self._end_sent = True
            parts.append(writer.end(self._trailers))

    def _go_ahead(self) -> None:
        """100 Continue arrived, or we waited long enough: send the body."""
        if self._continue_timer is not None:
            self._continue_timer.delete()
            self._continue_timer = None
        if self._continue is _C_WAITING and self._phase is _ATTACHED:
            self._continue = _C_GO
            self._flush()
            self._update_pause()

    def _update_pause(self) -> None:
        """Tell the caller to pause the request body while it cannot go anywhere."""
        if self._phase is _DONE or self._req_done:
            return
        paused = self._write_paused or self._pending > PENDING_HIGH_WATER
        if paused != self._paused:
            self._paused = paused
            self.emit("pause", paused)

    # --- connections --------------------------------------------------------------------------

    def _attach(self, conn: ClientConnection) -> None:
        """The pool gives us ``conn``: start an attempt on it."""
        self.conn = conn
        conn.exchange = self
        self._phase = _ATTACHED
        self._writer = RequestWriter()
        tcp = conn.tcp
        if self._res_paused:
            tcp.pause(True)
        self._write_paused = tcp.write_buffer_size > tcp.write_high_water
        self._last_activity = now = self.loop.time()
        timeout = self.client.effective_read_timeout
        if timeout:
            conn.wake_by(now + timeout)  # the connection's timer calls _check_read_timeout
        self._flush()
        if self.conn is conn and (
            self._write_paused or self._paused or self._pending > PENDING_HIGH_WATER
        ):
            self._update_pause()  # (without either there is nothing to tell)

    def _new_attempt(self) -> None:
        if self.conn is not None:
            self.conn.exchange = None
            self.conn = None
        self._head_sent = False
        self._sent = 0
        self._pending = sum(map(len, self._chunks))
        self._end_sent = False
        self._continue = _C_NONE
        self._got_bytes = False
        self._write_paused = False
        self._stop_timers()

    def _on_connect_error(self, err: error.HttpError, kind: str) -> None:
        """The pool could not open a connection for us (nothing was sent)."""
        if self._phase is not _QUEUED:
            return
        if kind == "socket" and self._attempts < self.client.retry_limit:
            self._attempts += 1
            self._retry(self.client.retry_delay)
        else:
            self._fail(err)

    def _on_connection_lost(self, conn: ClientConnection) -> None:
        """``conn`` closed before any byte of the response arrived."""
        if conn is not self.conn:
            return
        delay = self._retry_delay(conn)
        if delay is not None and self._head_sent:
            self.resent += 1  # an attempt the server may have seen (a proxy counts them)
        self._new_attempt()
        if delay is None:
            self._fail(error.ConnectError("connection closed before the response"))
        else:
            self._retry(delay)

    def _retry_delay(self, conn: ClientConnection) -> float | None:
        """How long to wait before replaying the request on another connection; None: never.

        RFC 9110 §9.2.2 and RFC 9112 §9.3.1: only an idempotent request may be retried
        automatically, unless we know the server never saw it -- which we only know if
        none of it was written. A reused connection that dies is most likely one the server
        timed out just as we sent on it: retried once at once, without counting.
        """
        if self._got_bytes:
            return None
        if not self._head_sent and self._free_retries < _MAX_FREE_RETRIES:
            self._free_retries += 1
            return 0.0
        if not self._replayable or self.method not in IDEMPOTENT_METHODS:
            return None
        if conn.reused and not self._stale_retried:
            self._stale_retried = True
            return 0.0
        if self._attempts < self.client.retry_limit:
            self._attempts += 1
            return float(self.client.retry_delay)
        return None

    def _retry(self, delay: float) -> None:
        # Even an immediate retry runs from a timer, after the loop's next poll: idle
        # connections that died with this one (a server restart) are noticed and dropped
        # before the pool is asked again.
        self._phase = _QUEUED
        self._retry_timer = self.loop.schedule(delay, self._requeue)

    def _requeue(self) -> None:
        self._retry_timer = None
        if self._phase is _QUEUED and self.origin is not None:
            self.client._pool_for(self.origin).acquire(self)

    def _on_write_pause(self, paused: bool) -> None:
        self._write_paused = paused
        if not paused:
            self._last_activity = self.loop.time()
        self._update_pause()

    def _check_read_timeout(self) -> float | None:
        """Fail if the server has been silent too long; else when to look again (None: never).

        Called by the connection's timer, which may fire early (see client_connection).
        """
        timeout = self.client.effective_read_timeout
        if self._phase is not _ATTACHED or not timeout:
            return None
        now = self.loop.time()
        if self._res_paused or not (self._end_sent or self._write_paused or self._started):
            # Not the server's turn: we are not reading, or the caller has not finished the
            # request. Only the server's silence counts (Thor 0.17 counted both).
            self._last_activity = now
        deadline = self._last_activity + timeout
        if deadline > now:
            return deadline
        self._fail(error.ReadTimeoutError(f"no data from the server for {timeout}s"))
        return None

    # --- reading the response -----------------------------------------------------------------

    def _on_response_events(self, conn: ClientConnection, events: list[Event], data: bool) -> None:
        if conn is not self.conn:
            return
        if data:
            self._got_bytes = True
            self._last_activity = self.loop.time()
        if (
            events
            and events[-1].__class__ is Invalid
            and not self._started
            and not any(event.__class__ is End for event in events)
        ):
            # The final response is found invalid in the same read as its head: report the
            # failure alone rather than a start that is taken back, so that nothing of it is
            # relayed (a proxy answers 502 instead of aborting).
            self._fail(events[-1].error)
            return
        try:
            for event in events:
                if self.conn is not conn:
                    return  # a listener cancelled the exchange, or it failed
                kind = type(event)
                if kind is Body:
                    self.emit("response_body", event.data)  # type: ignore[union-attr]
                elif kind is ResponseHead:
                    self._on_head(event)  # type: ignore[arg-type]
                elif kind is End:
                    self._on_end(conn, event.trailers)  # type: ignore[union-attr]
                else:
                    self._fail(event.error)  # type: ignore[union-attr]
        except BaseException:
            # A listener raised: the rest of the response cannot be delivered, so the exchange
            # ends here (as if cancelled) and the loop logs the exception.
            self.cancel()
            raise

    def _on_head(self, head: ResponseHead) -> None:
        status = head.status
        if status < 200:
            if status == 101:
                self._fail(error.UpstreamError("101 Switching Protocols to a plain request"))
                return
            self.emit("response_nonfinal", _STATUS[status], head.phrase, head.headers)
            if status == 100:
                self._go_ahead()
            return
        if self._continue is _C_WAITING:
            # RFC 9110 §10.1.1: a final response instead of 100: the body is not sent, and the
            # request cannot be completed on this connection, which is closed afterwards.
            self._continue = _C_REFUSED
            if self._continue_timer is not None:
                self._continue_timer.delete()
                self._continue_timer = None
        if head.framing is _F_TUNNEL:
            self._fail(error.UpstreamError("the server switched protocols"))
            return
        self._started = True
        self._keep_alive = head.keep_alive
        self.res_version = head.version
        self.emit("response_start", _STATUS[status], head.phrase, head.headers)

    def _on_end(self, conn: ClientConnection, trailers: RawHeaderListType) -> None:
        # RFC 9112 §9.3: reuse only if both messages are complete and neither side closes.
        writer = self._writer
        reusable = self._keep_alive and self._end_sent and writer.complete and writer.keep_alive
        self._finish()
        conn.pool.release(conn, reusable)
        self.emit("response_done", trailers)
        self.forget_listeners()

    # --- ending ---------------------------------------------------------------------------------

    def _stop_timers(self) -> None:
        if self._continue_timer is not None:
            self._continue_timer.delete()
            self._continue_timer = None
        if self._retry_timer is not None:
            self._retry_timer.delete()
            self._retry_timer = None

    def _finish(self) -> None:
        if self._phase is _QUEUED and self.origin is not None:
            pool = self.client._pools.get(self.origin)
            if pool is not None:
                pool.withdraw(self)
        self._phase = _DONE
        if self._continue_timer is not None or self._retry_timer is not None:
            self._stop_timers()
        self._chunks.clear()  # a kept request body is no use any more
        conn = self.conn
        if conn is not None:
            conn.exchange = None
            self.conn = None

    def _fail(self, err: error.HttpError) -> None:
        """End with ``err``: the connection (if any) is closed, ``error`` is the last event."""
        if self._phase is _DONE:
            return
        conn = self.conn
        self._finish()
        if conn is not None:
            conn.abort()
        self.emit("error", err)
        self.forget_listeners()

    # Thor 0.17 had these; harmless to keep for code that reads them.
    @property
    def res_done(self) -> bool:
        return self._phase is _DONE
