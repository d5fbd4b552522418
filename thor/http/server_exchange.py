"""The server side of one HTTP exchange: the request's events and the response's calls.

An exchange is created by its connection (:mod:`thor.http.server_connection`) for each
request; the application listens to its events and calls ``response_*``.  The response is
framed by a sans-IO :class:`~thor.http.protocol.ResponseWriter`; the bytes go to the
connection, which corks and sends them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.exchange import TlsInfo
from thor.http.headers import RawHeaderListType
from thor.http.protocol import RequestHead, ResponseWriter

if TYPE_CHECKING:
    from thor.http.server_connection import HttpServerConnection

__all__ = ["AnyHeaders", "ClientGoneError", "HttpServerExchange"]

log = logging.getLogger("thor.http.server")

AnyHeaders = list[tuple[bytes | str, bytes | str]] | list[tuple[bytes, bytes]]


class ClientGoneError(error.HttpError):
    """The client closed or lost the connection before the response was done."""

    desc = "Client closed the connection"
    status = 499


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
    """Headers as bytes, and whether the app set Date and Server itself."""
    has_date = has_server = False
    for name, value in headers:
        if name.__class__ is not bytes or value.__class__ is not bytes:
            break
        if len(name) in (4, 6):
            lname = name.lower()
            has_date = has_date or lname == b"date"
            has_server = has_server or lname == b"server"
    else:
        return headers, has_date, has_server  # type: ignore[return-value]
    out = [(as_bytes(n), as_bytes(v)) for n, v in headers]
    names = {n.lower() for n, _ in out}
    return out, b"date" in names, b"server" in names


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
    _writer: ResponseWriter | None = None
    _finished = False

    def __init__(self, conn: HttpServerConnection, head: RequestHead) -> None:
        EventEmitter.__init__(self)
        self.http_conn = conn
        self.server = server = conn.server
        self.method = head.method
        self.uri = head.target
        self.req_hdrs = head.headers
        self.req_version = head.version
        self.expect_continue = self._continue_pending = head.expect_continue
        self.persistent = head.keep_alive
        self.start_time = conn.loop.time()
        self.scheme = server.scheme

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
        return self.server.tcp_server.address

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
        if self._finished or self.started:
            return
        writer = self._get_writer()
        fields = _normalise(headers)[0]
        self._continue_pending = False
        self.http_conn.write(writer.nonfinal(int(status), as_bytes(phrase), fields))

    def response_start(
        self, status: int | bytes | str, phrase: str | bytes, headers: AnyHeaders
    ) -> None:
        """Start the response; ``status`` may be an int, bytes or str."""
        if self._finished:
            return
        if self.started:
            raise error.OutputStateError("response_start() called twice")
        writer = self._writer or self._get_writer()
        server = self.server
        if not self.req_complete or server.draining:
            # Answering before the whole request arrived: what is left of it would be
            # read as the next request, so the connection ends after this response.
            writer.keep_alive = False
        fields, has_date, has_server = _normalise(headers)
        code = status if status.__class__ is int else int(status)
        if phrase.__class__ is not bytes:
            phrase = phrase.encode("latin-1")  # type: ignore[union-attr]
        extra = server.extra_fields(has_date, has_server)
        head = writer.start(code, phrase, fields, extra)
        self.started = True
        self.res_status = code
        self.res_hdrs = fields
        self._continue_pending = False
        self.http_conn.write(head)

    def response_body(self, chunk: bytes) -> None:
        """Send a piece of the response body."""
        if self._finished or not chunk:
            return
        if self._writer is None or not self.started:
            raise error.OutputStateError("response_body() before response_start()")
        self.res_bytes += len(chunk)
        self.http_conn.write(self._writer.body(chunk))

    def response_file(self, fd: int, offset: int, count: int) -> bool:
        """Send ``count`` bytes of the open file ``fd`` from ``offset`` as body, by sendfile.

        For a response with a Content-Length, over a connection that can (not TLS).
        Returns False, having sent nothing, when it cannot: write the bytes with
        ``response_body`` then.  The connection keeps its own duplicate of ``fd``.
        """
        if self._finished:
            return True
        writer = self._writer
        if writer is None or not self.started:
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
        if self._finished:
            return
        writer = self._writer
        if writer is None or not self.started:
            raise error.OutputStateError("response_done() before response_start()")
        tail = writer.end(_normalise(trailers)[0] if trailers else [])
        self.res_done = True
        conn = self.http_conn
        if tail:
            conn.write(tail)
        keep = writer.keep_alive and not close and self.req_complete
        self._finish(True)
        conn.exchange_finished(self, keep)

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

    def _get_writer(self) -> ResponseWriter:
        writer = self._writer
        if writer is None:
            writer = self._writer = ResponseWriter(self.method, self.req_version, self.persistent)
        return writer

    def _finish(self, completed: bool) -> None:
        self._finished = True
        self.emit("done", completed)

    # -------------------------------------------------------------- reading

    def abort(self) -> None:
        """End the exchange now, its response incomplete: flush what was produced, then close
        the connection, so the client sees the response cut short, never taken as whole."""
        if self._finished:
            return
        conn = self.http_conn
        conn.flush()
        conn.abort(None)

    def pause_request_body(self, paused: bool) -> None:
        """Stop (True) or resume (False) the delivery of ``request_body`` events."""
        if not self._finished:
            self.http_conn.req_body_pause(paused)


if TYPE_CHECKING:
    # mypy checks here that an HTTP/1.1 exchange keeps the exchange contract.
    from thor.http.exchange import Exchange

    def _keeps_the_contract(exchange: HttpServerExchange) -> Exchange:
        return exchange
