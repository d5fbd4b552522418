"""One client connection of the HTTP server: bytes in, parser events out, exchanges in order.

See :mod:`thor.http.server` for the theory of operation.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING, Any

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
)
from thor.http.server_exchange import ClientGoneError, HttpServerExchange, notify_error
from thor.tcp import ConnState, TcpConnection

if TYPE_CHECKING:
    from thor.http.server import HttpServer

__all__ = ["HttpServerConnection", "Wait"]

log = logging.getLogger("thor.http.server")


class Wait(enum.Enum):
    """What a connection's deadline is waiting for."""

    NOTHING = "nothing"  # the application has the floor
    REQUEST = "request"  # idle keep-alive: the next request
    HEAD = "head"  # the rest of a request head (slowloris)
    BODY = "body"  # more of the request body
    OUTPUT = "output"  # the client to read what we sent


# Module constants: in CPython 3.11 reading ``Wait.BODY`` costs ~8 times a global.
_NOTHING = Wait.NOTHING
_REQUEST = Wait.REQUEST
_HEAD = Wait.HEAD
_BODY = Wait.BODY
_OUTPUT = Wait.OUTPUT
_FRAMING_LENGTH = Framing.LENGTH
_FRAMING_CHUNKED = Framing.CHUNKED
_FRAMING_NONE = Framing.NONE
_FRAMING_TUNNEL = Framing.TUNNEL
_PARSER_IDLE = ParserState.IDLE
_PARSER_HEAD = ParserState.HEAD
_CLOSED = ConnState.CLOSED


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
        self.exchange: HttpServerExchange | None = None  # the one being answered
        self._reading: HttpServerExchange | None = None  # the one whose request is read
        self.served = 0
        self._pending: list[Event] = []
        self._body_paused = False
        self._dispatching = False
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._out_size = 0
        self._closing = False
        self._wait = _REQUEST
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
        return (
            self.exchange is None
            and self._reading is None
            and not self._pending
            and self.parser.state is _PARSER_IDLE
        )

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
        if wait is _NOTHING or self.tcp_conn.state is _CLOSED:
            return
        now = self.loop.time()
        if now < self._deadline:
            self._timer = self.loop.schedule(self._deadline - now, self._on_timer)
            return
        if wait is _REQUEST:
            self.close()
        elif wait is _HEAD:
            self._reject(error.RequestTimeoutError("request head not received in time"))
        elif wait is _BODY:
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
        if self.exchange is None and self.parser.state is _PARSER_HEAD:
            if self._wait is not _HEAD:
                self._expect(_HEAD, self.server.header_timeout)
        elif self._wait is _BODY:
            self._expect(_BODY, self.server.body_timeout)

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
                reading = self._reading
                if cls is Body:
                    if self._body_paused or reading is None:
                        break
                    data = event.data  # type: ignore[union-attr]
                    reading.req_body_bytes += len(data)
                    self._emit(reading, "request_body", data)
                elif cls is End:
                    if reading is None:
                        break
                    self._reading = None
                    self._request_done(reading, event.trailers)  # type: ignore[union-attr]
                elif cls is RequestHead:
                    if self.exchange is not None or reading is not None or self._closing:
                        break
                    self._request_start(event)  # type: ignore[arg-type]
                else:  # Invalid
                    if reading is None and self.exchange is not None:
                        break  # answer the request before this one first
                    self._reject(event.error, reading)  # type: ignore[union-attr]
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
        self.exchange = self._reading = exchange
        self.served += 1
        framing = head.framing
        if framing is _FRAMING_NONE:
            # No body: the request is whole already, so a handler may answer from
            # request_start and keep the connection (request_done still follows).
            exchange.req_complete = True
        if framing is _FRAMING_LENGTH or framing is _FRAMING_CHUNKED:
            self._expect(_BODY, self.server.body_timeout)
        else:
            self._wait = _NOTHING
        try:
            self.server.emit("exchange", exchange)
            exchange.emit("request_start", head.method, head.target, head.headers)
        except Exception:
            self._app_failed(exchange)
            return
        if framing is _FRAMING_TUNNEL:
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
        if self._wait is _BODY:
            self._wait = _NOTHING
        self._emit(exchange, "request_done", trailers)
        if exchange._finished and exchange is not self.exchange:
            exchange.forget_listeners()  # answered before its request was all read

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
        exchange = self._reading
        if paused:
            self.tcp_conn.pause(True)
            if self._wait is _BODY:
                self._wait = _NOTHING
            return
        if exchange is not None and not exchange.req_complete:
            if exchange._continue_pending and not exchange.started:
                self._send_continue(exchange)
            self._expect(_BODY, self.server.body_timeout)
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
        self._wait = _NOTHING
        exchange = self.exchange
        self.exchange = self._reading = None
        self._pending = []
        self.server._forget(self)
        if exchange is not None and not exchange._finished:
            exchange._finish(False)
            notify_error(exchange, ClientGoneError())
            exchange.forget_listeners()

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

    def cork(self) -> bool:
        """Hold writes: no end-of-iteration flush is scheduled until :meth:`uncork`.

        Returns what ``uncork`` needs: whether a flush was scheduled already.
        """
        held = self._flush_scheduled
        self._flush_scheduled = True  # write() then schedules nothing
        return held

    def uncork(self, held: bool) -> None:
        """End :meth:`cork`; what is still queued (no flush came meanwhile) goes now."""
        if not held and self._flush_scheduled:
            self._flush_scheduled = False
            self.flush()

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
            self._expect(_OUTPUT, self.server.write_timeout)
        elif self._wait is _OUTPUT:
            self._wait = _NOTHING if self.exchange is not None else _REQUEST
            if self.exchange is None:
                self._expect(_REQUEST, self.server.idle_timeout)
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
        if self._reading is not exchange:  # else request_done is still to come
            exchange.forget_listeners()
        self._body_paused = False
        if not keep_alive or (self.server.draining and not self._pending):
            self.close()
            return
        if self._wait is not _OUTPUT:
            self._expect(_REQUEST, self.server.idle_timeout)
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
                notify_error(exchange, err)
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
        self._wait = _NOTHING
        self.flush()
        self.tcp_conn.close()

    def abort(self, err: error.HttpError | None) -> None:
        """Close at once; the current exchange, if any, gets ``error``."""
        self._closing = True
        self._out.clear()
        self.tcp_conn.abort()
        del err
