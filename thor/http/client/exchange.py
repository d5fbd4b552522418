"""HttpClientExchange: one request and its response, over the client's pooled connections.

Events, in order (a grammar; ``error`` is terminal and may come at any point, ``pause`` at
any point before the request is done)::

    exchange = *response_nonfinal response_start ( *response_body response_done
                                                  / switched )
             / ... error
    pause(bool) : stop/resume calling request_body (the server is not reading it)
    switched(tcp, leftover) : after a 101 to a request made with ``upgrade=`` (its
                              response_start carried the 101): the connection is yours

``cancel()`` ends an exchange with no further event.

Theory of operation. ``request_start`` normalises the request and asks the origin's pool for
a connection. The head is written once the framing is known: at the first ``request_body``
(a body without Content-Length is chunked), at ``request_done`` (no body), or at once with
``Expect: 100-continue``. Framing, keep-alive, 100-continue and the switch are decided by
the sans-IO ``ClientConnection`` (``conn.proto``): this class writes its bytes and reads
its ``state``. ``Phase`` says where the exchange is; that state, where the messages are.
Body chunks are kept until written, and up to ``retry_body_limit`` bytes after, to replay
the request on another connection (one *attempt* per connection; rules in ``retry.py``).
An origin spoken to in HTTP/2 carries the exchange on a stream instead (``on_stream.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.events import EventEmitter
from thor.http import error
from thor.http.client.on_stream import StreamCarried
from thor.http.client.phase import ATTACHED as _ATTACHED
from thor.http.client.phase import DONE as _DONE
from thor.http.client.phase import NEW as _NEW
from thor.http.client.phase import QUEUED as _QUEUED
from thor.http.client.phase import RESPONDING as _RESPONDING
from thor.http.client.phase import SENT as _SENT
from thor.http.client.phase import Phase
from thor.http.client.retry import Retries
from thor.http.client.url import (
    IDEMPOTENT_METHODS,
    connect_url,
    parse_url,
    prepare_headers,
    to_bytes,
    with_connection_options,
    with_upgrade,
)
from thor.http.headers import RawHeaderListType
from thor.http.protocol import Body, End, Event, Invalid, ResponseHead
from thor.http.protocol.client_connection import (
    CLIENT_AWAITING,
    CLIENT_EARLY,
    CLIENT_IDLE,
    CLIENT_SENDING,
    CLIENT_WAITING_100,
    ClientConnection,
)
from thor.http.protocol.messages import FRAMING_TUNNEL

if TYPE_CHECKING:
    import thor.loop
    from thor.http.client.client import HttpClient
    from thor.http.client.connection import PooledConnection
    from thor.http.client.url import Origin

__all__ = ["IDEMPOTENT_METHODS", "PENDING_HIGH_WATER", "HttpClientExchange", "Phase"]

_STATUS = {code: b"%d" % code for code in range(100, 600)}
# Unsent request body held for an exchange that has no connection (or waits for 100
# Continue) before it asks its caller to pause.
PENDING_HIGH_WATER = 256 * 1024
# Bytes above which parts are written separately rather than joined (joining copies).
_JOIN_LIMIT = 16 * 1024


class HttpClientExchange(StreamCarried, EventEmitter):
    """One HTTP request/response; see the module docstring for its events."""

    # Defaults, as class attributes: an instance sets only what changes. An exchange is made
    # per request, and assigning ~30 attributes in __init__ cost as much as parsing a URL.
    method = b""
    uri = b""
    req_hdrs: RawHeaderListType = []  # as given by the caller (normalised); never mutated
    req_target = b""
    authority = b""
    origin: Origin | None = None
    res_version = b""
    res_head_size = 0  # bytes of the response head as received (0: not known, as over HTTP/2)
    conn: PooledConnection | None = None
    _phase = Phase.NEW
    # The request, as the caller gives it.
    _headers: RawHeaderListType = []  # what is sent; never mutated
    _expect_continue = False
    _upgrade = False  # the request offers a protocol switch (Upgrade)
    _has_body: bool | None = None
    _body_total = 0
    _replayable = True
    _req_done = False
    _trailers: RawHeaderListType = []  # never mutated
    # The current attempt.
    _sent = 0  # index in _chunks of the first chunk not written on this attempt
    _pending = 0  # bytes of _chunks not written on this attempt
    # Retries and timers.
    resent = 0  # public: times the request was written again after a connection died
    _retries: Retries | None = None  # made by the first failure
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
        upgrade: bytes | str | None = None,
        tunnel_to: bytes | str | None = None,
    ) -> None:
        """Start the request; ``uri`` is absolute (http or https).

        ``upgrade`` offers a protocol switch (RFC 9110 §7.8): it is sent as the ``Upgrade``
        field (with ``Connection: Upgrade``), and a 101 answer ends the exchange with
        ``switched(tcp, leftover)`` instead of returning the connection to the pool. A
        ``CONNECT`` to the server ``uri`` names asks it for a tunnel to ``tunnel_to``
        (``host:port``); a 2xx answer ends it the same way (RFC 9110 §9.3.6).
        """
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
            if method == b"CONNECT" or tunnel_to is not None:
                url = connect_url(method, url, tunnel_to)
            if req_hdrs:
                self.req_hdrs, self._headers, self._expect_continue = prepare_headers(
                    req_hdrs, url.authority, self.preserve_host, bool(client.idle_timeout)
                )
            else:  # what prepare_headers gives for no fields, without its loop
                self.req_hdrs = []
                self._headers = with_connection_options(
                    [(b"Host", url.authority)], False, bool(client.idle_timeout)
                )
            if upgrade is not None:
                self._upgrade = True
                self._headers = with_upgrade(self._headers, to_bytes(upgrade, "latin-1"))
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
        pool = client.pools.get(origin)
        (pool or client.pool_for(origin)).acquire(self)

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
        if self.conn is not None:
            self._flush()
        elif self.stream_conn is not None:
            self.flush_stream()
        self._update_pause()

    def request_done(self, trailers: list[tuple[bytes | str, bytes | str]] | None = None) -> None:
        """The request is complete (``trailers`` go after a chunked body)."""
        if self._phase is _DONE or self._req_done:
            return
        self._req_done = True
        if trailers:
            self._trailers = [(to_bytes(n, "latin-1"), to_bytes(v, "latin-1")) for n, v in trailers]
        if self.conn is not None:
            self._flush()
        elif self.stream_conn is not None:
            self.flush_stream()

    def res_body_pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading the response from the server."""
        self._res_paused = paused
        conn = self.conn
        if conn is not None:
            conn.tcp.pause(paused)
            if not paused:
                self._last_activity = self.loop.time()
        elif not paused and self._held:
            self.resume_stream()

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
        if self._phase is _ATTACHED:  # the head is not written on this connection yet
            if self._has_body is None:
                if self._chunks:
                    self._has_body = True
                elif self._req_done:
                    self._has_body = False
                elif self._expect_continue:
                    self._has_body = True
                else:
                    return  # the framing is not known yet (see the module docstring)
            if self._has_body is False and not self._expect_continue:
                self._send_bodiless(conn)  # the usual GET: no parts to gather
                return
        proto = conn.proto
        parts: list[bytes] = []
        if self._phase is _ATTACHED and not self._start_request(proto, parts):
            return
        state = proto.state
        if state is CLIENT_SENDING or state is CLIENT_EARLY:
            try:
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

    def _start_request(self, proto: ClientConnection, parts: list[bytes]) -> bool:
        """Frame the head of a request with a body; False if it cannot be sent."""
        try:
            parts.append(
                proto.start_request(
                    self.method,
                    self.req_target,
                    self._headers,
                    has_body=bool(self._has_body),
                    expect_continue=self._expect_continue,
                    upgrade=self._upgrade,
                )
            )
        except error.HttpError as err:
            self._fail(err)
            return False
        self._phase = _SENT
        if proto.state is CLIENT_WAITING_100:
            # RFC 9110 §10.1.1: wait for 100 (or a final response) before the body, but not
            # indefinitely: the server may not know the expectation.
            self._continue_timer = self.loop.schedule(
                self.client.expect_continue_timeout, self._go_ahead
            )
        return True

    def _send_bodiless(self, conn: PooledConnection) -> None:
        try:
            data = conn.proto.start_bodiless(
                self.method, self.req_target, self._headers, self._trailers, self._upgrade
            )
        except error.HttpError as err:
            self._fail(err)
            return
        self._phase = _SENT
        self._last_activity = self.loop.time()
        conn.tcp.write(data)

    def _frame_body(self, parts: list[bytes]) -> None:
        """The unsent chunks (and the end, once the caller is done), framed; the connection
        is in SENDING or EARLY (the server may still read what we send)."""
        proto = self.conn.proto  # type: ignore[union-attr]
        chunks = self._chunks
        if len(chunks) > self._sent:
            body = proto.writer.body
            parts.extend([body(chunks[i]) for i in range(self._sent, len(chunks))])
        if self._replayable:
            self._sent = len(chunks)
        else:
            chunks.clear()
            self._sent = 0
        self._pending = 0
        if self._req_done:
            parts.append(proto.end_request(self._trailers))

    def _go_ahead(self) -> None:
        """100 Continue arrived, or we waited long enough: send the body."""
        if self._continue_timer is not None:
            self._continue_timer.delete()
            self._continue_timer = None
        conn = self.conn
        if conn is None:
            return
        if conn.proto.state is CLIENT_WAITING_100:
            conn.proto.continue_body()  # the timeout (a 100 moved it already)
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

    # --- the pool's and the connection's side ---------------------------------------------------
    # Called by OriginPool and PooledConnection only (not part of the caller's API).

    def attach(self, conn: PooledConnection) -> None:
        """The pool gives us ``conn``: start an attempt on it."""
        self.conn = conn
        conn.exchange = self
        self._phase = _ATTACHED
        tcp = conn.tcp
        if self._res_paused:
            tcp.pause(True)
        self._write_paused = tcp.write_buffer_size > tcp.write_high_water
        self._last_activity = now = self.loop.time()
        timeout = self.client.effective_read_timeout
        if timeout:
            conn.wake_by(now + timeout)  # the connection's timer calls check_read_timeout
        self._flush()
        if self.conn is conn and (
            self._write_paused or self._paused or self._pending > PENDING_HIGH_WATER
        ):
            self._update_pause()  # (without either there is nothing to tell)

    def connect_failed(self, err: error.HttpError, kind: str) -> None:
        """The pool could not open a connection for us (nothing was sent)."""
        if self._phase is not _QUEUED:
            return
        client = self.client
        retries = self._retries = self._retries or Retries()
        delay = retries.after_connect_error(kind, client.retry_limit, client.retry_delay)
        if delay is None:
            self._fail(err)
        else:
            self._retry(delay)

    def connection_lost(self, conn: PooledConnection) -> None:
        """``conn`` closed before any byte of the response arrived."""
        if conn is not self.conn:
            return
        client = self.client
        retries = self._retries = self._retries or Retries()
        written = self._phase is not _ATTACHED
        delay = retries.after_loss(
            received=conn.proto.received,
            written=written,
            replayable=self._replayable,
            idempotent=self.method in IDEMPOTENT_METHODS,
            reused=conn.reused,
            limit=client.retry_limit,
            delay=client.retry_delay,
        )
        if delay is not None and written:
            self.resent += 1  # an attempt the server may have seen (a proxy counts them)
        self._new_attempt()
        if delay is None:
            self._fail(error.ConnectError("connection closed before the response"))
        else:
            self._retry(delay)

    def write_paused(self, paused: bool) -> None:
        """The connection's write buffer went above (True) or below (False) its water mark."""
        self._write_paused = paused
        if not paused:
            self._last_activity = self.loop.time()
        self._update_pause()

    def check_read_timeout(self) -> float | None:
        """Fail if the server has been silent too long; else when to look again (None: never).

        Called by the connection's timer, which may fire early (see connection.py).
        """
        timeout = self.client.effective_read_timeout
        conn = self.conn
        if conn is None or not timeout:
            return None
        now = self.loop.time()
        if self._res_paused or not (
            self._phase is _RESPONDING or self._write_paused or conn.proto.state is CLIENT_AWAITING
        ):
            # Not the server's turn: we are not reading, or the caller has not finished the
            # request. Only the server's silence counts (Thor 0.17 counted both).
            self._last_activity = now
        deadline = self._last_activity + timeout
        if deadline > now:
            return deadline
        self._fail(error.ReadTimeoutError(f"no data from the server for {timeout}s"))
        return None

    def response_events(self, conn: PooledConnection, events: list[Event], data: bool) -> None:
        """What ``conn`` read of the response (``data``: bytes, not the end of the stream)."""
        if conn is not self.conn:
            return
        if data:
            self._last_activity = self.loop.time()
        if (
            events
            and events[-1].__class__ is Invalid
            and self._phase is not _RESPONDING
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
                    head: ResponseHead = event  # type: ignore[assignment]
                    status = head.status
                    if (
                        status < 200
                        or head.framing is FRAMING_TUNNEL
                        or self._continue_timer is not None
                    ):
                        self._on_head(conn, head)
                    else:  # a final response, as usual: _on_head(), inline
                        self._phase = _RESPONDING
                        self.res_version, self.res_head_size = head.version, head.size
                        self.emit("response_start", _STATUS[status], head.phrase, head.headers)
                elif kind is End:
                    self._on_end(conn, event.trailers)  # type: ignore[union-attr]
                else:
                    self._fail(event.error)  # type: ignore[union-attr]
        except BaseException:
            # A listener raised: the rest of the response cannot be delivered, so the exchange
            # ends here (as if cancelled) and the loop logs the exception.
            self.cancel()
            raise

    # --- attempts and retries -------------------------------------------------------------------

    def _new_attempt(self) -> None:
        if self.conn is not None:
            self.conn.exchange = None
            self.conn = None
        self._sent = 0
        self._pending = sum(map(len, self._chunks))
        self._write_paused = False
        self._stop_timers()

    # --- reading the response -----------------------------------------------------------------

    def _on_head(self, conn: PooledConnection, head: ResponseHead) -> None:
        status = head.status
        if head.framing is FRAMING_TUNNEL:
            # The sans-IO connection lets a switch through only when the request offered it.
            self._switch(conn, head)
            return
        if status < 200:
            self.emit("response_nonfinal", _STATUS[status], head.phrase, head.headers)
            if status == 100:
                self._go_ahead()
            return
        if self._continue_timer is not None:
            # RFC 9110 §10.1.1: a final response instead of 100: the body is not sent, and the
            # request cannot be completed on this connection (closed afterwards).
            self._continue_timer.delete()
            self._continue_timer = None
        self._phase = _RESPONDING
        self.res_version, self.res_head_size = head.version, head.size
        self.emit("response_start", _STATUS[status], head.phrase, head.headers)

    def _on_end(self, conn: PooledConnection, trailers: RawHeaderListType) -> None:
        # RFC 9112 §9.3: reused only if both messages are complete and neither side closes;
        # the sans-IO connection is then back in IDLE.
        reusable = conn.proto.state is CLIENT_IDLE
        if self._continue_timer is not None or self._retry_timer is not None:
            self._stop_timers()
        # _finish(), inline: the phase is RESPONDING (not QUEUED), the connection is ours.
        self._phase = _DONE
        self._chunks.clear()  # a kept request body is no use any more
        conn.exchange = None
        self.conn = None
        conn.pool.release(conn, reusable)
        self.emit("response_done", trailers)
        self.forget_listeners()

    def _switch(self, conn: PooledConnection, head: ResponseHead) -> None:
        """RFC 9110 §15.2.2: after the 101's empty line the bytes are the new protocol's. The
        connection leaves the pool for good, with the bytes read past the head."""
        self._phase = _RESPONDING
        self.res_version, self.res_head_size = head.version, head.size
        self.emit("response_start", _STATUS[head.status], head.phrase, head.headers)
        if self.conn is not conn:
            return  # a listener cancelled the exchange
        self._finish()
        tcp, leftover = conn.hand_over()
        if self.listeners("switched"):
            self.emit("switched", tcp, leftover)
        else:
            tcp.abort()  # nobody takes it: it cannot go back to the pool
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
            pool = self.client.pools.get(self.origin)
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
        elif self.stream_conn is not None:
            self.leave_stream()

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
