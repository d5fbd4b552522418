"""One HTTP/2 stream as an exchange (:class:`thor.http.Exchange`): the request's events, the
response's calls.

The stream's connection (:mod:`thor.http2.server`) creates an ``H2Exchange`` for each
request head and feeds it the stream's events; the application answers through the same
calls as over HTTP/1.1.  What differs is kept here:

- the request head comes from pseudo-header fields: ``:method``, ``:path`` (``:authority``
  for CONNECT); ``:authority`` becomes a ``host`` field when none came, so applications see
  a Host (RFC 9113 §8.3.1); several ``cookie`` fields are joined with ``"; "`` (§8.2.3);
- the response head drops connection-specific fields (§8.2.2) and lowercases names (§8.2);
- the body goes out as the peer's flow-control windows allow (§5.2): what does not fit waits
  here, the exchange emits ``pause(True)``, and the connection sends the rest when a
  WINDOW_UPDATE comes (then ``pause(False)``);
- ``abort()`` resets the stream (RST_STREAM CANCEL), the connection carries on;
- ``pause_request_body(True)`` holds the body here and stops acknowledging it, so the
  client's window closes (§6.9): a slow reader holds the sender back.

Events: ``request_start(method, uri, headers)``, ``request_body(chunk)``*,
``request_done(trailers)``, ``error(err)``, ``pause(paused)``, ``done(completed)``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.exchange import TlsInfo
from thor.http2.protocol import ErrorCode, H2Connection, LocalProtocolError

__all__ = ["H2Exchange", "StreamOwner", "request_head"]

log = logging.getLogger("thor.http2.server")

Fields = list[tuple[bytes, bytes]]
AnyHeaders = Any  # list of (bytes | str, bytes | str)

# RFC 9113 §8.2.2: fields that mean something only to an HTTP/1.1 connection.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


class StreamOwner(Protocol):
    """What an exchange calls on its connection (``H2ServerConnection``)."""

    loop: thor.loop.Loop
    h2: H2Connection
    tcp_conn: Any
    server: Any

    def changed(self) -> None: ...
    def hold(self, exchange: H2Exchange) -> None: ...
    def stream_finished(self, exchange: H2Exchange) -> None: ...
    def blocked(self, exchange: H2Exchange, blocked: bool) -> None: ...
    def acknowledge(self, length: int, stream_id: int) -> None: ...
    def tls_info(self) -> TlsInfo | None: ...
    def server_fields(self, headers: Any) -> Fields: ...


def _as_bytes(value: bytes | str) -> bytes:
    return value if value.__class__ is bytes else value.encode("latin-1")  # type: ignore[union-attr]


def request_head(fields: Fields) -> tuple[bytes, bytes, Fields]:
    """``(method, uri, headers)`` of a checked request field list (the core has applied
    §8.3's rules): pseudo-headers taken out, Host supplied, cookies joined."""
    method = path = authority = b""
    headers: Fields = []
    cookies: list[bytes] = []
    has_host = False
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
        elif name == b"cookie":
            cookies.append(value)
        else:
            if name == b"host":
                has_host = True
            headers.append((name, value))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))  # §8.2.3
    if authority and not has_host:
        headers.insert(0, (b"host", authority))  # §8.3.1: applications expect a Host
    if method == b"CONNECT":
        path = authority
    return method, path, headers


# Response field names as sent (bytes or str) -> the HTTP/2 name, or b"" for a dropped one;
# applications use a handful of names, so the memo stays small (and is bounded anyway).
_NAMES: dict[bytes | str, bytes] = {}


def _h2_name(name: bytes | str) -> bytes:
    lname = _as_bytes(name).lower()
    if lname in CONNECTION_SPECIFIC:
        lname = b""
    if len(_NAMES) < 4096:
        _NAMES[name] = lname
    return lname


def response_fields(status: int, headers: AnyHeaders, extra: Fields) -> Fields:
    """The HTTP/2 response head: ``:status``, lowercase names, no connection fields."""
    out: Fields = [(b":status", b"%d" % status)]
    names = _NAMES
    for name, value in headers:
        lname = names.get(name)
        if lname is None:
            lname = _h2_name(name)
        if lname:
            out.append((lname, value if value.__class__ is bytes else _as_bytes(value)))
    out.extend(extra)
    return out


class H2Exchange(EventEmitter):
    """One request and its response on an HTTP/2 stream (see the module docstring)."""

    req_version = b"2"
    req_complete = False
    req_body_bytes = 0
    started = False
    res_done = False
    res_status = 0
    res_bytes = 0
    res_hdrs: Fields = []
    finished = False
    expect_continue = False
    persistent = True
    body_paused = False
    no_content = False  # a response to HEAD, or 204 / 304: no DATA may follow
    request_ended = False  # request_done was emitted

    def __init__(self, conn: StreamOwner, stream_id: int, fields: Fields) -> None:
        EventEmitter.__init__(self)
        self.http_conn = conn
        self.stream_id = stream_id
        self.method, self.uri, self.req_hdrs = request_head(fields)
        self.server = conn.server
        self.scheme: str = conn.server.scheme
        self.start_time = conn.loop.time()
        self.last_progress = self.start_time  # request body progress (body timeout)
        self.blocked_since = 0.0  # when the peer's window closed on our output; 0: open
        self._pending: list[bytes] = []  # response body waiting for the peer's window
        self._tail: bytes | None = None  # the latest body piece, held (see response_body)
        self._pending_size = 0
        self._end: Fields | None = None  # the response's end, once asked: trailers or []
        self._held: list[tuple[bytes, int]] = []  # request body held by pause_request_body
        self._head: Fields | None = None  # the response head, held (see response_start)

    @property
    def loop(self) -> thor.loop.Loop:
        return self.http_conn.loop

    @property
    def tls(self) -> TlsInfo | None:
        return self.http_conn.tls_info()

    @property
    def client_address(self) -> Any:
        return self.http_conn.tcp_conn.address

    @property
    def server_address(self) -> Any:
        return self.server.server_address

    def __repr__(self) -> str:
        return f"<H2Exchange {self.stream_id} {self.method!r} {self.uri[:60]!r}>"

    # ------------------------------------------------------------- request side

    def receive_body(self, data: bytes, flow_length: int) -> None:
        """Body bytes from the connection; acknowledged once delivered (unless held)."""
        self.last_progress = self.loop.time()
        if self.body_paused or self._held:
            self._held.append((data, flow_length))
            return
        self._deliver(data, flow_length)

    def _deliver(self, data: bytes, flow_length: int) -> None:
        self.req_body_bytes += len(data)
        if data:
            self.emit("request_body", data)
        # The application has had the bytes: give the window back (§6.9).
        self.http_conn.acknowledge(flow_length, self.stream_id)

    def receive_end(self, trailers: Fields) -> None:
        if self._held:
            self._end_held = trailers
            return
        self.req_complete = self.request_ended = True
        self.emit("request_done", trailers)

    _end_held: Fields | None = None

    def pause_request_body(self, paused: bool) -> None:
        """Stop (True) or resume (False) delivering the body; while stopped, nothing is
        acknowledged, so the client's stream window closes (RFC 9113 §6.9)."""
        if self.finished or paused == self.body_paused:
            return
        self.body_paused = paused
        if paused:
            return
        held, self._held = self._held, []
        for index, (data, length) in enumerate(held):
            self._deliver(data, length)
            if self.body_paused:  # paused again by a listener: keep the rest
                self._held = held[index + 1 :] + self._held
                return
        trailers, self._end_held = self._end_held, None
        if trailers is not None:
            self.receive_end(trailers)
        self.http_conn.changed()

    # ------------------------------------------------------------- response side

    def response_nonfinal(
        self, status: int | bytes, phrase: str | bytes, headers: AnyHeaders = ()
    ) -> None:
        """An interim (1xx) head, e.g. 103 Early Hints (RFC 9113 §8.1)."""
        if self.finished or self.started:
            return
        code = int(status)
        if code == 101:
            return  # §8.6: no 101 in HTTP/2
        self._send_head(response_fields(code, headers, []), False)

    def response_start(
        self, status: int | bytes | str, phrase: str | bytes, headers: AnyHeaders
    ) -> None:
        if self.finished:
            return
        if self.started:
            raise error.OutputStateError("response_start() called twice")
        code = status if status.__class__ is int else int(status)
        self.started = True
        self.res_status = code
        if self.method == b"HEAD" or code == 204 or code == 304:
            self.no_content = True  # RFC 9110 §6.4.1: whatever the app writes is dropped
        fields = response_fields(code, headers, self.http_conn.server_fields(headers))
        self.res_hdrs = fields
        # Held until the first DATA, the end, or the next flush: a response that ends at
        # once goes as one HEADERS frame with END_STREAM (gRPC's Trailers-Only form, whose
        # grpc-status a proxy relays as a head and an end, in the same read).
        self._head = fields
        self.http_conn.hold(self)

    def _flush_head(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._send_head(head, False)

    def _send_head(self, fields: Fields, end: bool) -> None:
        try:
            self.http_conn.h2.send_headers(self.stream_id, fields, end)
        except LocalProtocolError:
            return  # the stream was reset meanwhile: nothing to send to
        self.http_conn.changed()

    def response_body(self, chunk: bytes) -> None:
        """Send a piece of the body.  The latest piece is held until the end of this loop
        iteration (or ``response_done``, which then ends the stream in the same DATA frame)."""
        if self.finished or not chunk:
            return
        if not self.started:
            raise error.OutputStateError("response_body() before response_start()")
        if self.no_content:
            return
        self.res_bytes += len(chunk)
        if self._pending:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            return
        tail = self._tail
        self._tail = chunk
        if tail is None:
            self.http_conn.hold(self)
        else:
            self._send(tail)  # if the window closes, ``chunk`` waits behind the rest

    def release(self) -> None:
        """The connection flushes: send the held piece (the stream stays open)."""
        if self._head is not None:
            self._flush_head()
        tail = self._tail
        if tail is not None and not self.finished:
            self._tail = None
            self._send(tail)

    def _send(self, chunk: bytes, end: bool = False) -> bool:
        """Send what the windows allow; keep the rest and pause the producer.  True when
        all of ``chunk`` went (and with ``end``, the stream ended with it)."""
        if self._head is not None:
            self._flush_head()
        conn = self.http_conn
        try:
            sent = conn.h2.send_data(self.stream_id, chunk, end)
        except LocalProtocolError:
            return True  # the stream is gone: nothing to keep
        conn.changed()
        if sent < len(chunk):
            pending = self._pending
            pending.append(chunk[sent:] if sent else chunk)
            self._pending_size += len(chunk) - sent
            held = self._tail
            if held is not None:  # the piece after this one waits behind it
                self._tail = None
                pending.append(held)
                self._pending_size += len(held)
            # Last, as listeners of ``pause`` may write or end the response meanwhile.
            conn.blocked(self, True)
            return False
        return True

    def window_opened(self) -> bool:
        """The peer's window grew: send what waits.  True once nothing waits."""
        pending = self._pending
        if not pending:
            return True
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_size = 0
        end = self._end
        if not self._send(data, end == []):
            return False
        if end is not None:
            self._finish_response(end, end == [])
        return True

    @property
    def output_blocked(self) -> bool:
        return bool(self._pending)

    def set_write_buffer_limit(self, high: int) -> None:
        """Nothing to set: what the peer's stream window does not take waits here and pauses
        the producer at once (RFC 9113 §5.2), so the window is this stream's bound."""

    def response_file(self, fd: int, offset: int, count: int) -> bool:
        """HTTP/2 frames every byte: write the file's bytes with ``response_body``."""
        return False

    def response_done(self, trailers: AnyHeaders = (), close: bool = False) -> None:
        if self.finished:
            return
        if not self.started:
            raise error.OutputStateError("response_done() before response_start()")
        self.res_done = True
        fields = [(_as_bytes(n).lower(), _as_bytes(v)) for n, v in trailers] if trailers else []
        tail = self._tail
        if tail is not None:
            self._tail = None
            if not self._send(tail, not fields):  # the last piece ends the stream
                self._end = fields
                return
            ended = not fields
        elif self._pending:
            self._end = fields  # sent when the window lets the body out
            return
        elif self._head is not None and not fields:
            head, self._head = self._head, None
            self._send_head(head, True)  # the whole response in one HEADERS frame
            ended = True
        else:
            ended = False
        self._finish_response(fields, ended)

    def _finish_response(self, trailers: Fields, ended: bool = False) -> None:
        if self._head is not None:
            self._flush_head()
        conn = self.http_conn
        h2 = conn.h2
        try:
            if trailers:
                h2.send_trailers(self.stream_id, trailers)
            elif not ended:
                h2.send_data(self.stream_id, b"", end_stream=True)
            if not self.req_complete and self.stream_id in h2.streams:
                # §8.1: a response before the whole request; the rest is not wanted.
                h2.reset_stream(self.stream_id, ErrorCode.NO_ERROR)
        except LocalProtocolError:
            pass
        conn.changed()
        self.finish(True)

    def respond(
        self,
        status: int | bytes | str,
        phrase: str | bytes,
        headers: AnyHeaders,
        body: bytes = b"",
    ) -> None:
        """A whole response in one call (one HEADERS and one DATA frame when it fits)."""
        if self.finished:
            return
        if body:
            self.response_start(status, phrase, headers)
            if self.no_content or self.finished:
                self.response_done()
                return
            self.res_bytes += len(body)
            self._flush_head()
            conn = self.http_conn
            try:
                sent = conn.h2.send_data(self.stream_id, body, end_stream=True)
            except LocalProtocolError:
                sent = -1
            conn.changed()
            if sent == len(body):  # the body and the end in one DATA frame
                self.res_done = True
                if not self.req_complete and self.stream_id in conn.h2.streams:
                    conn.h2.reset_stream(self.stream_id, ErrorCode.NO_ERROR)
                self.finish(True)
                return
            if sent >= 0:
                self._pending.append(body[sent:])
                self._pending_size += len(body) - sent
                conn.blocked(self, True)
            self.response_done()
            return
        if self.started:
            raise error.OutputStateError("response_start() called twice")
        code = status if status.__class__ is int else int(status)
        self.started = self.res_done = True
        self.res_status = code
        fields = response_fields(code, headers, self.http_conn.server_fields(headers))
        self.res_hdrs = fields
        self._send_head(fields, True)
        if not self.req_complete and self.stream_id in self.http_conn.h2.streams:
            self.http_conn.h2.reset_stream(self.stream_id, ErrorCode.NO_ERROR)
        self.finish(True)

    def finish(self, completed: bool) -> None:
        """Emit ``done`` once; the connection forgets the stream."""
        if self.finished:
            return
        self.finished = True
        self._pending = []
        self._tail = None
        self._head = None
        self.http_conn.stream_finished(self)
        self.emit("done", completed)

    def abort(self) -> None:
        """Reset the stream (RST_STREAM CANCEL): the client sees the response cut short."""
        if self.finished:
            return
        self.release()  # what was produced goes first
        h2 = self.http_conn.h2
        if self.stream_id in h2.streams:
            h2.reset_stream(self.stream_id, ErrorCode.CANCEL)
            self.http_conn.changed()
        self.finish(False)

    def take_over(self) -> Any:
        raise error.OutputStateError("no protocol switch on an HTTP/2 stream (RFC 9113 §8.6)")


if TYPE_CHECKING:
    # mypy checks here that an HTTP/2 stream keeps the exchange contract.
    from thor.http.exchange import Exchange

    def _keeps_the_contract(exchange: H2Exchange) -> Exchange:
        return exchange
