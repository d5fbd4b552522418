"""The HTTP/1.1 server: TCP connections <-> the sans-IO parser <-> exchanges.

Theory of operation.  Each connection feeds what it reads to a
:class:`~thor.http.protocol.RequestParser` and dispatches the events in
order.  One exchange is active per connection at a time: the events of a
pipelined request wait (and reading pauses) until the response before it is
done, so responses always leave in request order without buffering them.

Output is corked: what an exchange writes is gathered and handed to the TCP
connection once per loop iteration (or at ``response_done``), so a small
response is one ``send``.

One timer per connection watches a deadline whose meaning follows what the
connection waits for (:class:`Wait`): the next request (``idle_timeout``),
the rest of a request head (``header_timeout``), request body progress
(``body_timeout``), or the client reading our output (``write_timeout``).
Moving a deadline later costs an assignment; the timer re-arms itself when
it fires early.

Errors in what the client sent get a response with the error's status and
``Connection: close``, and are logged.  An exception raised by the
application's listener gets a 500 if nothing was sent yet, else the
connection is aborted; either way it is logged and the server goes on.
"""

from __future__ import annotations

import enum
import logging
import ssl
from email.utils import formatdate
from time import time as wall_time
from typing import Any

import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.headers import RawHeaderListType
from thor.http.protocol import (
    Body,
    End,
    Event,
    Framing,
    ParserState,
    RequestHead,
    RequestParser,
    ResponseWriter,
)
from thor.tcp import ConnState, TcpConnection, TcpServer

__all__ = ["HttpServer", "HttpServerConnection", "HttpServerExchange"]

log = logging.getLogger("thor.http.server")

AnyHeaders = list[tuple[bytes | str, bytes | str]] | list[tuple[bytes, bytes]]


class ClientGoneError(error.HttpError):
    """The client closed or lost the connection before the response was done."""

    desc = "Client closed the connection"
    status = 499


class Wait(enum.Enum):
    """What a connection's deadline is waiting for."""

    NOTHING = "nothing"  # the application has the floor
    REQUEST = "request"  # idle keep-alive: the next request
    HEAD = "head"  # the rest of a request head (slowloris)
    BODY = "body"  # more of the request body
    OUTPUT = "output"  # the client to read what we sent


def _notify_error(exchange: HttpServerExchange, err: error.HttpError) -> None:
    """Emit ``error`` on the exchange if anybody listens (an unheard error is not a crash)."""
    if exchange.listeners("error"):
        try:
            exchange.emit("error", err)
        except Exception:
            log.exception("error in the error handler of %r", exchange)


def _bytes(value: bytes | str) -> bytes:
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
    out = [(_bytes(n), _bytes(v)) for n, v in headers]
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
        self.http_conn.write(writer.nonfinal(int(status), _bytes(phrase), fields))

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

    def _get_writer(self) -> ResponseWriter:
        writer = self._writer
        if writer is None:
            writer = self._writer = ResponseWriter(self.method, self.req_version, self.persistent)
        return writer

    def _finish(self, completed: bool) -> None:
        self._finished = True
        self.emit("done", completed)

    # -------------------------------------------------------------- reading

    def pause_request_body(self, paused: bool) -> None:
        """Stop (True) or resume (False) the delivery of ``request_body`` events."""
        if not self._finished:
            self.http_conn.req_body_pause(paused)


class HttpServerConnection(EventEmitter):
    """One client connection; see the module docstring."""

    def __init__(self, server: HttpServer, tcp_conn: TcpConnection) -> None:
        super().__init__()
        self.server = server
        self.tcp_conn = tcp_conn
        self.loop = server.loop
        self.parser = RequestParser(
            max_request_line=server.max_request_line,
            max_field_section=server.max_field_section,
            max_fields=server.max_fields,
            max_body_size=server.max_body_size,
        )
        self.exchange: HttpServerExchange | None = None
        self.served = 0
        self._pending: list[Event] = []
        self._body_paused = False
        self._dispatching = False
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._out_size = 0
        self._closing = False
        self._wait = Wait.REQUEST
        self._deadline = self.loop.time() + server.idle_timeout
        self._timer: thor.loop.ScheduledEvent | None = self.loop.schedule(
            server.idle_timeout, self._on_timer
        )
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_peer_close)
        tcp_conn.on("disconnect", self._on_disconnect)
        tcp_conn.on("pause", self._on_output_pause)

    @property
    def is_idle(self) -> bool:
        """No exchange in progress and no partial request buffered."""
        return self.exchange is None and not self._pending and self.parser.state is ParserState.IDLE

    # ------------------------------------------------------------ deadlines

    def _expect(self, wait: Wait, seconds: float | None) -> None:
        self._wait = wait
        if seconds is None:
            return
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.callback is None or timer.when > deadline:
            if timer is not None:
                timer.delete()
            self._timer = self.loop.schedule(seconds, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        wait = self._wait
        if wait is Wait.NOTHING or self.tcp_conn.state is ConnState.CLOSED:
            return
        now = self.loop.time()
        if now < self._deadline:
            self._timer = self.loop.schedule(self._deadline - now, self._on_timer)
            return
        if wait is Wait.REQUEST:
            self.close()
        elif wait is Wait.HEAD:
            self._reject(error.RequestTimeoutError("request head not received in time"))
        elif wait is Wait.BODY:
            self._reject(error.RequestTimeoutError("request body stalled"))
        else:
            log.info("client %r does not read its response; aborting", self.tcp_conn.address)
            self.abort(ClientGoneError("response not read in time"))

    # -------------------------------------------------------------- input

    def _on_data(self, data: bytes) -> None:
        events = self.parser.feed(data)
        if self._pending:
            self._pending.extend(events)
        else:
            self._pending = events
        self._dispatch()
        if self.exchange is None and self.parser.state is ParserState.HEAD:
            if self._wait is not Wait.HEAD:
                self._expect(Wait.HEAD, self.server.header_timeout)
        elif self._wait is Wait.BODY:
            self._expect(Wait.BODY, self.server.body_timeout)

    def _dispatch(self) -> None:
        """Deliver pending events until one has to wait for the current exchange."""
        if self._dispatching:
            return  # the outer call goes on with the new state
        self._dispatching = True
        pending = self._pending
        done = 0
        try:
            for event in pending:
                cls = event.__class__
                exchange = self.exchange
                if cls is Body:
                    if self._body_paused or exchange is None:
                        break
                    data = event.data  # type: ignore[union-attr]
                    exchange.req_body_bytes += len(data)
                    self._emit(exchange, "request_body", data)
                elif cls is End:
                    if exchange is None:
                        break
                    self._request_done(exchange, event.trailers)  # type: ignore[union-attr]
                elif cls is RequestHead:
                    if exchange is not None or self._closing:
                        break
                    self._request_start(event)  # type: ignore[arg-type]
                else:  # Invalid
                    if exchange is not None and exchange.req_complete:
                        break  # answer the request before this one first
                    self._reject(event.error)  # type: ignore[union-attr]
                done += 1
                if self._closing:
                    done = len(pending)
                    break
        finally:
            self._dispatching = False
            if done:
                del pending[:done]
            if self._out:
                self.flush()
        self.tcp_conn.pause(bool(pending) or self._body_paused)

    def _request_start(self, head: RequestHead) -> None:
        exchange = HttpServerExchange(self, head)
        self.exchange = exchange
        self.served += 1
        framing = head.framing
        if framing is Framing.LENGTH or framing is Framing.CHUNKED:
            self._expect(Wait.BODY, self.server.body_timeout)
        else:
            self._wait = Wait.NOTHING
        try:
            self.server.emit("exchange", exchange)
            exchange.emit("request_start", head.method, head.target, head.headers)
        except Exception:
            self._app_failed(exchange)
            return
        if framing is Framing.TUNNEL:
            # CONNECT reaches an HTTP server that is no proxy: RFC 9110 §9.3.6 lets it refuse.
            if not exchange.started:
                exchange.response_start(
                    405,
                    b"Method Not Allowed",
                    [
                        (b"Allow", b"GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
                        (b"Content-Length", b"0"),
                    ],
                )
                exchange.response_done(close=True)
            return
        if exchange._continue_pending and not self._body_paused and not exchange.started:
            self._send_continue(exchange)

    def _send_continue(self, exchange: HttpServerExchange) -> None:
        exchange._continue_pending = False
        self.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # RFC 9110 §10.1.1

    def _request_done(self, exchange: HttpServerExchange, trailers: RawHeaderListType) -> None:
        exchange.req_complete = True
        exchange._continue_pending = False
        if self._wait is Wait.BODY:
            self._wait = Wait.NOTHING
        self._emit(exchange, "request_done", trailers)

    def _emit(self, exchange: HttpServerExchange, event: str, arg: Any) -> None:
        try:
            exchange.emit(event, arg)
        except Exception:
            self._app_failed(exchange)

    def _app_failed(self, exchange: HttpServerExchange) -> None:
        log.exception("error in the handler of %r", exchange)
        if exchange._finished:
            return
        if exchange.started:
            self.abort(None)
        else:
            self._reject(error.HttpError("the application failed"), exchange)

    def req_body_pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) delivering the request body."""
        if paused == self._body_paused:
            return
        self._body_paused = paused
        exchange = self.exchange
        if paused:
            self.tcp_conn.pause(True)
            if self._wait is Wait.BODY:
                self._wait = Wait.NOTHING
            return
        if exchange is not None and not exchange.req_complete:
            if exchange._continue_pending and not exchange.started:
                self._send_continue(exchange)
            self._expect(Wait.BODY, self.server.body_timeout)
        self._dispatch()

    def _on_peer_close(self) -> None:
        events = self.parser.feed_eof()
        if events:
            self._pending.extend(events)
            self._dispatch()
        exchange = self.exchange
        if exchange is None:
            if not self._pending:
                self.close()
        elif exchange.req_complete and not exchange._finished:
            # Like asyncio-based servers, an EOF while the response is pending means the
            # client has gone: the handler gets ``error`` (a proxy cancels its upstream).
            self.abort(ClientGoneError("the client closed the connection"))

    def _on_disconnect(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self._wait = Wait.NOTHING
        exchange = self.exchange
        self.exchange = None
        self._pending = []
        self.server._forget(self)
        if exchange is not None and not exchange._finished:
            exchange._finish(False)
            _notify_error(exchange, ClientGoneError())

    # ------------------------------------------------------------- output

    def write(self, data: bytes) -> None:
        """Queue ``data``; it is sent at the end of this loop iteration."""
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size > 65536:
            self.flush()  # a large write: no point in holding it (and flow control sees it)
            return
        # While input is being dispatched, the end of the dispatch flushes (one send for
        # a response written synchronously); otherwise the end of this loop iteration.
        if not self._flush_scheduled and not self._dispatching:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand what is queued to the TCP connection now."""
        self._flush_scheduled = False
        self._out_size = 0
        out = self._out
        if out:
            self.tcp_conn.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _on_output_pause(self, paused: bool) -> None:
        if paused:
            self._expect(Wait.OUTPUT, self.server.write_timeout)
        elif self._wait is Wait.OUTPUT:
            self._wait = Wait.NOTHING if self.exchange is not None else Wait.REQUEST
            if self.exchange is None:
                self._expect(Wait.REQUEST, self.server.idle_timeout)
        exchange = self.exchange
        if exchange is not None:
            self._emit(exchange, "pause", paused)
        self.emit("pause", paused)

    def exchange_finished(self, exchange: HttpServerExchange, keep_alive: bool) -> None:
        """The response of ``exchange`` is complete: flush, then next request or close."""
        self.flush()
        if exchange is not self.exchange:
            return
        self.exchange = None
        self._body_paused = False
        if not keep_alive or (self.server.draining and not self._pending):
            self.close()
            return
        if self._wait is not Wait.OUTPUT:
            self._expect(Wait.REQUEST, self.server.idle_timeout)
        self._dispatch()

    # ------------------------------------------------------------ closing

    def _reject(self, err: error.HttpError, exchange: HttpServerExchange | None = None) -> None:
        """Answer an error with its status, then close (the framing is in doubt)."""
        exchange = exchange or self.exchange
        log.info(
            "rejecting request from %r: %s %s",
            self.tcp_conn.address,
            err.status,
            err,
        )
        if exchange is not None and not exchange._finished:
            if not exchange.req_complete:
                _notify_error(exchange, err)
            if exchange.started:
                self.abort(None)
                return
            exchange._finish(False)
        body = f"{err.status} {err.desc}\n".encode()
        status, phrase = err.server_status
        self.write(
            b"HTTP/1.1 %s %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n%sConnection: close\r\n\r\n%s"
            % (status, phrase, len(body), self.server.extra_fields(False, False), body)
        )
        self.close()

    def close(self) -> None:
        """Flush what is queued and close (lingering, see thor.tcp)."""
        self._closing = True
        self._wait = Wait.NOTHING
        self.flush()
        self.tcp_conn.close()

    def abort(self, err: error.HttpError | None) -> None:
        """Close at once; the current exchange, if any, gets ``error``."""
        self._closing = True
        self._out.clear()
        self.tcp_conn.abort()
        del err


class HttpServer(EventEmitter):
    """An HTTP/1.1 server.  Events: ``start``, ``exchange(exchange)``, ``stop``.

    Settings are class attributes that keyword arguments override per server.
    """

    tcp_server_class: type[TcpServer] = TcpServer
    idle_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 30.0
    max_connections: int | None = None
    max_request_line: int = 8190
    max_field_section: int = 32768
    max_fields: int = 100
    max_body_size: int | None = None
    server_header: bytes = b"thor"
    date_header: bool = True

    def __init__(
        self,
        host: str | bytes | None = None,
        port: int = 0,
        loop: thor.loop.Loop | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        sock: Any = None,
        path: str | None = None,
        fd: int | None = None,
        backlog: int = 1024,
        reuse_port: bool = False,
        **settings: Any,
    ) -> None:
        super().__init__()
        for name, value in settings.items():
            if (
                name.startswith("_")
                or not hasattr(HttpServer, name)
                or callable(getattr(HttpServer, name))
            ):
                raise TypeError(f"HttpServer has no setting {name!r}")
            setattr(self, name, value)
        self.loop = loop or thor.loop._loop
        self.scheme = "https" if tls_context is not None else "http"
        if tls_context is not None:
            from thor.tls import TlsServer

            self.tcp_server: TcpServer = TlsServer(
                host,
                port,
                tls_context,
                sock=sock,
                loop=self.loop,
                backlog=backlog,
                path=path,
                fd=fd,
                reuse_port=reuse_port,
            )
        else:
            self.tcp_server = self.tcp_server_class(
                host, port, sock, self.loop, backlog, path=path, fd=fd, reuse_port=reuse_port
            )
        self.host = self.tcp_server.host
        self.port = self.tcp_server.port
        self.connections: set[HttpServerConnection] = set()
        self.draining = False
        self._stop_emitted = False
        self._drain_timer: thor.loop.ScheduledEvent | None = None
        self._date = b""
        self._date_second = 0
        self._server_line = (
            b"Server: %s\r\n" % _bytes(self.server_header) if self.server_header else b""
        )
        self.tcp_server.on("connect", self._on_connect)
        self.tcp_server.on("start", lambda: self.emit("start"))

    def extra_fields(self, has_date: bool, has_server: bool) -> bytes:
        """The Date and Server lines the server adds (Date is cached per second)."""
        out = b""
        if self.date_header and not has_date:
            now = int(wall_time())
            if now != self._date_second:
                self._date_second = now
                self._date = b"Date: %s\r\n" % formatdate(now, usegmt=True).encode()
            out = self._date
        if not has_server:
            out += self._server_line
        return out

    def _on_connect(self, tcp_conn: TcpConnection) -> None:
        limit = self.max_connections
        if limit is not None and len(self.connections) >= limit:
            log.warning("connection limit (%d) reached; answering 503", limit)
            body = b"503 Service Unavailable: too many connections\n"
            tcp_conn.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                b"Retry-After: 1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            tcp_conn.close()
            return
        conn = HttpServerConnection(self, tcp_conn)
        self.connections.add(conn)
        if self.draining:
            # Accepted from the backlog while draining: serve its first request.
            conn._expect(Wait.REQUEST, min(self.idle_timeout, 2.0))

    def _forget(self, conn: HttpServerConnection) -> None:
        self.connections.discard(conn)
        if self.draining and not self.connections:
            self._stopped()

    def shutdown(self) -> None:
        """Stop accepting now; open connections are left alone.  Emits ``stop``."""
        self.tcp_server.stop_accepting(drain_backlog=False)
        self.emit("stop")

    def graceful_shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting (serving what waits in the backlog), close idle connections,
        finish in-flight exchanges (closing after each), then emit ``stop``.
        Connections still open after ``timeout`` seconds are aborted."""
        if self.draining:
            return
        self.draining = True
        self.tcp_server.stop_accepting(drain_backlog=True)
        for conn in list(self.connections):
            if conn.is_idle and conn.served:
                conn.close()
        if not self.connections:
            self._stopped()
        elif timeout is not None:
            self._drain_timer = self.loop.schedule(timeout, self._abort_all)

    def _abort_all(self) -> None:
        self._drain_timer = None
        for conn in list(self.connections):
            log.warning("graceful shutdown timed out; aborting %r", conn.tcp_conn.address)
            conn.abort(None)

    def _stopped(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.delete()
            self._drain_timer = None
        if not self._stop_emitted:
            self._stop_emitted = True
            self.emit("stop")
