"""The server side of one HTTP exchange: the request's events and the response's calls.

An exchange is created by its connection (:mod:`thor.http.server.connection`) for each
request; the application listens to its events and calls ``response_*``.  The response is
framed by the sans-IO :class:`~thor.http.protocol.ServerConnection` (which owns the
writer); the bytes go to the connection, which corks and sends them.

This module imports nothing from the rest of the package: the connection and the server
it needs are typed by the protocols below (what it calls), so the imports run one way,
server -> connection -> exchange.

After a 101 to an Upgrade request or a 2xx to CONNECT, :meth:`HttpServerExchange.take_over`
hands the application the raw connection (:class:`SwitchedConnection`); see docs/http.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, Protocol

import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.exchange import TlsInfo
from thor.http.headers import RawHeaderListType
from thor.http.protocol import RequestHead, ResponseWriter, ServerConnection
from thor.memo import Memo
from thor.tcp import TcpConnection

__all__ = [
    "AnyHeaders",
    "ClientGoneError",
    "ConnectionSide",
    "HttpServerExchange",
    "ServerOwner",
    "ServerSide",
    "SwitchedConnection",
]

log = logging.getLogger("thor.http.server")

AnyHeaders = list[tuple[bytes | str, bytes | str]] | list[tuple[bytes, bytes]]


class ClientGoneError(error.HttpError):
    """The client closed or lost the connection before the response was done."""

    desc = "Client closed the connection"
    status = 499


class ServerSide(Protocol):
    """What an exchange reads of its server (``HttpServer``)."""

    scheme: str
    draining: bool

    @property
    def server_address(self) -> Any: ...

    def extra_fields(self, has_date: bool, has_server: bool) -> bytes: ...


class ServerOwner(ServerSide, Protocol):
    """What a connection reads of its server (``HttpServer``)."""

    loop: thor.loop.Loop
    idle_timeout: float
    header_timeout: float
    body_timeout: float
    write_timeout: float
    max_request_line: int
    max_field_section: int
    max_fields: int
    max_body_size: int | None
    min_body_rate: float
    min_response_rate: float
    min_rate_window: float

    h2c: bool
    h2c_upgrade: bool
    draining: bool
    drain_idle_until: float  # loop time: while draining, idle connections close by then

    def emit(self, event: str, *args: Any) -> None: ...
    def connection_closed(self, conn: Any) -> None: ...
    def switch_to_h2(
        self,
        old: Any,
        received: bytes,
        upgrade: tuple[bytes, list[tuple[bytes, bytes]]] | None = None,
    ) -> None: ...


class ConnectionSide(Protocol):
    """What an exchange calls on its connection (``HttpServerConnection``)."""

    loop: thor.loop.Loop
    tcp_conn: TcpConnection
    protocol: ServerConnection

    @property
    def server(self) -> ServerSide: ...

    def write(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def cork(self) -> bool: ...
    def uncork(self, held: bool) -> None: ...
    def exchange_finished(self, exchange: HttpServerExchange) -> None: ...
    def abort(self, err: error.HttpError | None) -> None: ...
    def req_body_pause(self, paused: bool) -> None: ...
    def detach(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SwitchedConnection:
    """A connection handed over after a 101 (to an Upgrade request) or a 2xx to CONNECT.

    ``tcp_conn`` is the raw stream, HTTP's listeners removed and reading resumed: listen to
    its ``data``, ``close``, ``disconnect`` and ``pause(paused)`` (the write buffer is over
    its high water mark: stop writing until ``pause(False)``), call ``write``, ``pause``
    (stop / resume reading), ``close`` and ``abort``. ``leftover`` holds what the client
    sent past the request before the switch (the first bytes of the new protocol); handle
    it before the first ``data`` event, in the same loop iteration. ``loop`` is the loop
    the connection lives on.
    """

    tcp_conn: TcpConnection
    leftover: bytes
    loop: thor.loop.Loop


def notify_error(exchange: HttpServerExchange, err: error.HttpError) -> None:
    """Emit ``error`` on the exchange if anybody listens (an unheard error is not a crash)."""
    if exchange.listeners("error"):
        try:
            exchange.emit("error", err)
        except Exception:
            log.exception("error in the error handler of %r", exchange)


def tls_info(tcp_conn: Any) -> TlsInfo | None:
    """The :class:`TlsInfo` of a connection (None when it is not a TLS one)."""
    sock = getattr(tcp_conn, "ssl_object", None)
    if sock is None:
        return None
    cipher = sock.cipher()
    return TlsInfo(
        version=sock.version(),
        cipher=cipher[0] if cipher else None,
        alpn_protocol=sock.selected_alpn_protocol(),
        peer_certificate=sock.getpeercert(binary_form=True),
    )


def as_bytes(value: bytes | str) -> bytes:
    return value if value.__class__ is bytes else value.encode("latin-1")  # type: ignore[union-attr]


def _normalise(headers: AnyHeaders) -> tuple[RawHeaderListType, bool, bool]:
    """Headers as bytes, and whether the app set Date and Server itself.

    A field list seen before, as a tuple, is answered from ``_SEEN``: applications, a
    cache's hits and a proxy's responses send the same fields again and again, and the loop
    below costs about a thousand machine instructions a field (callgrind); building and
    hashing the tuple, a small part of that (the writer hashes the same tuple next, with
    the fields' hashes kept in their bytes).  Only lists of bytes pairs are remembered, and
    a tuple equal to one of them holds the same names.
    """
    try:
        key: tuple[Any, ...] | None = tuple(headers)
        seen = _SEEN_GET(key)  # type: ignore[arg-type]
    except TypeError:  # a [name, value] list, a bytearray: worked out every time
        key = seen = None
    if seen is not None:
        return headers, seen[0], seen[1]  # type: ignore[return-value]
    has_date = has_server = False
    for name, value in headers:
        if name.__class__ is not bytes or value.__class__ is not bytes:
            break
        if len(name) in (4, 6):
            lname = name.lower()
            has_date = has_date or lname == b"date"
            has_server = has_server or lname == b"server"
    else:
        if key is not None and sum(map(len, chain.from_iterable(key))) <= _SEEN_MAX_BYTES:
            _SEEN.put(key, (has_date, has_server))
        return headers, has_date, has_server  # type: ignore[return-value]
    out = [(as_bytes(n), as_bytes(v)) for n, v in headers]
    names = {n.lower() for n, _ in out}
    return out, b"date" in names, b"server" in names


# Field lists (as tuples) -> (has Date, has Server), for _normalise: bounded in entries and
# in the bytes of each, as the writer's memo of serialized fields is.
_SEEN: Memo[tuple[tuple[bytes, bytes], ...], tuple[bool, bool]] = Memo(256)
_SEEN_GET = _SEEN.get
_SEEN_MAX_BYTES = 2048


class HttpServerExchange(EventEmitter):
    """One request and its response.

    Events: ``request_start(method, uri, headers)``, ``request_body(chunk)``*,
    ``request_done(trailers)``, ``error(err)``, ``pause(paused)`` (the client
    is not reading: stop sending), ``done(completed)``.
    """

    # Defaults as class attributes: an exchange is created per request, and these only
    # change on some paths.
    req_complete = False
    req_body_bytes = 0
    started = False
    res_done = False
    res_status = 0
    res_bytes = 0
    res_hdrs: RawHeaderListType = []  # the response's fields once started (access logs)
    finished = False  # ``done`` was emitted: nothing more happens to this exchange
    # The connection's write marks while set_write_buffer_limit's bound holds; put back as
    # the exchange ends, by a test here rather than a ``done`` listener per bound response.
    _marks_before: tuple[int, int] | None = None

    def __init__(self, conn: ConnectionSide, head: RequestHead, writer: ResponseWriter) -> None:
        EventEmitter.__init__(self)
        self.http_conn = conn
        self._protocol = conn.protocol
        self._writer = writer
        self.server = server = conn.server
        self.method = head.method
        self.uri = head.target
        self.req_hdrs = head.headers
        self.req_version = head.version
        self.expect_continue = head.expect_continue
        self.persistent = head.keep_alive
        self.start_time = conn.loop.time()
        self.scheme = server.scheme

    @property
    def response_whole(self) -> bool:
        """Whether what was written so far is a whole response (see ``body_whole``)."""
        return self.started and self._writer.body_whole

    @property
    def loop(self) -> thor.loop.Loop:
        """The loop the exchange lives on."""
        return self.http_conn.loop

    @property
    def tls(self) -> TlsInfo | None:
        """What TLS negotiated for this connection, or None over cleartext."""
        return tls_info(self.http_conn.tcp_conn)

    @property
    def client_address(self) -> Any:
        """The client's address: (host, port, ...) or a UNIX socket's name."""
        return self.http_conn.tcp_conn.address

    @property
    def server_address(self) -> Any:
        """The address the server listens on."""
        return self.server.server_address

    def __repr__(self) -> str:
        return f"<HttpServerExchange {self.method!r} {self.uri[:60]!r}>"

    # ------------------------------------------------------------- responding

    def response_nonfinal(
        self,
        status: int | bytes,
        phrase: str | bytes,
        headers: AnyHeaders = (),  # type: ignore[assignment]
    ) -> None:
        """Send an interim (1xx) response, e.g. 103 Early Hints."""
        if self.finished or self.started:
            return
        fields = _normalise(headers)[0]
        self.http_conn.write(self._protocol.send_nonfinal(int(status), as_bytes(phrase), fields))

    def response_start(
        self, status: int | bytes | str, phrase: str | bytes, headers: AnyHeaders
    ) -> None:
        """Start the response; ``status`` may be an int, bytes or str."""
        if self.finished:
            return
        if self.started:
            raise error.OutputStateError("response_start() called twice")
        server = self.server
        if server.draining:
            self._writer.keep_alive = False
        fields, has_date, has_server = _normalise(headers)
        code = status if status.__class__ is int else int(status)
        if phrase.__class__ is not bytes:
            phrase = phrase.encode("latin-1")  # type: ignore[union-attr]
        extra = server.extra_fields(has_date, has_server)
        # The sans-IO connection decides keep-alive, and whether this switches protocols.
        head = self._protocol.start_response(code, phrase, fields, extra)
        self.started = True
        self.res_status = code
        self.res_hdrs = fields
        self.http_conn.write(head)

    def response_body(self, chunk: bytes) -> None:
        """Send a piece of the response body."""
        if self.finished or not chunk:
            return
        if not self.started:
            raise error.OutputStateError("response_body() before response_start()")
        self.res_bytes += len(chunk)
        self.http_conn.write(self._writer.body(chunk))

    def response_file(self, fd: int, offset: int, count: int) -> bool:
        """Send ``count`` bytes of the open file ``fd`` from ``offset`` as body, by sendfile.

        For a response with a Content-Length, over a connection that can (not TLS).
        Returns False, having sent nothing, when it cannot: write the bytes with
        ``response_body`` then.  The connection keeps its own duplicate of ``fd``.
        """
        if self.finished:
            return True
        writer = self._writer
        if not self.started:
            raise error.OutputStateError("response_file() before response_start()")
        conn = self.http_conn
        if not conn.tcp_conn.can_sendfile:
            return False
        to_send = writer.body_sent_elsewhere(count)
        if to_send is None:
            return False
        if to_send:
            self.res_bytes += to_send
            conn.flush()  # the head and what was written before go first
            conn.tcp_conn.sendfile(fd, offset, to_send)
        return True

    def response_done(self, trailers: AnyHeaders = (), close: bool = False) -> None:  # type: ignore[assignment]
        """Finish the response; ``close=True`` closes the connection after it."""
        if self.finished:
            return
        if not self.started:
            raise error.OutputStateError("response_done() before response_start()")
        tail = self._protocol.end_response(_normalise(trailers)[0] if trailers else [], close)
        self.res_done = True
        conn = self.http_conn
        if tail:
            conn.write(tail)
        self.finished = True  # finish(True), inline: once per request
        if self._marks_before is not None:
            self._restore_marks()
        self.emit("done", True)
        conn.exchange_finished(self)

    def respond(
        self,
        status: int | bytes | str,
        phrase: str | bytes,
        headers: AnyHeaders,
        body: bytes = b"",
    ) -> None:
        """A whole response in one call: ``response_start``, ``response_body``, ``response_done``.

        Called from outside request dispatch (a timer, a thread's result), the three
        calls would schedule a flush for the end of the loop iteration that
        ``response_done`` makes pointless; this sends the response at once instead.
        """
        conn = self.http_conn
        held = conn.cork()  # response_done flushes start, body and end together
        try:
            self.response_start(status, phrase, headers)
            if body:
                self.response_body(body)
            self.response_done()
        finally:
            conn.uncork(held)

    def finish(self, completed: bool) -> None:
        """Emit ``done`` (the connection calls this when the exchange ends otherwise)."""
        self.finished = True
        if self._marks_before is not None:
            self._restore_marks()
        self.emit("done", completed)

    # ---------------------------------------------------------- switching

    def take_over(self) -> SwitchedConnection:
        """Take the connection away from HTTP after a switching response head.

        Legal once ``response_start`` sent 101 to a complete Upgrade request (RFC 9110
        §7.8) or a 2xx to CONNECT (§9.3.6); raises ``OutputStateError`` otherwise. The head
        is sent at once, the exchange is done (``done(True)``), and the connection leaves
        the server's care (its timeouts and graceful shutdown; ``stop`` does not wait for
        it). Without ``take_over``, ``response_done`` ends such a response by closing.
        """
        if self.finished:
            raise error.OutputStateError("take_over() after the exchange ended")
        leftover = self._protocol.take_over()  # raises unless a switch was answered
        conn = self.http_conn
        conn.flush()
        conn.detach()
        self.res_done = True
        self.finish(True)
        self.forget_listeners()
        return SwitchedConnection(conn.tcp_conn, leftover, conn.loop)

    # -------------------------------------------------------------- reading

    def abort(self) -> None:
        """End the exchange now, its response incomplete: flush what was produced, then close
        the connection, so the client sees the response cut short, never taken as whole."""
        if self.finished:
            return
        conn = self.http_conn
        conn.flush()
        conn.abort(None)

    def pause_request_body(self, paused: bool) -> None:
        """Stop (True) or resume (False) the delivery of ``request_body`` events."""
        if not self.finished:
            self.http_conn.req_body_pause(paused)

    def set_write_buffer_limit(self, high: int) -> None:
        """Pause the producer once more than ``high`` bytes wait for this client, until the
        exchange is done; then the connection's own marks come back (a keep-alive
        connection's next response is not bound by this one's relay)."""
        if self.finished:
            return
        tcp = self.http_conn.tcp_conn
        if self._marks_before is None:  # a second call keeps the connection's own marks
            self._marks_before = (tcp.write_high_water, tcp.write_low_water)
        tcp.set_write_buffer_limits(high)

    def _restore_marks(self) -> None:
        """The connection's own write marks back, as the exchange ends."""
        marks = self._marks_before
        assert marks is not None
        self._marks_before = None
        self.http_conn.tcp_conn.set_write_buffer_limits(*marks)


if TYPE_CHECKING:
    # mypy checks here that an HTTP/1.1 exchange keeps the exchange contract.
    from thor.http.exchange import Exchange

    def _keeps_the_contract(exchange: HttpServerExchange) -> Exchange:
        return exchange
