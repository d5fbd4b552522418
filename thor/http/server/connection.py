"""One client connection of the HTTP/1.1 server: moves bytes, arms the deadline, emits.

The decisions (which parsed event may reach the application now, keep-alive, when to send
100 Continue, whether a response switches protocols) are the sans-IO
:class:`~thor.http.protocol.ServerConnection`'s; this class feeds it what it reads, hands
what it lets through to exchanges, writes what it returns, and watches one deadline
(:class:`Wait`).  See :mod:`thor.http.server` for the theory of operation.

Imports within the package: :mod:`thor.http.server.exchange` only (server -> connection ->
exchange); the server is typed by :class:`~thor.http.server.exchange.ServerOwner`, what this module
reads of it.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import thor.http.server.rates as rates
import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.protocol import (
    Body,
    End,
    Framing,
    ParserState,
    RequestHead,
    ServerConnection,
)
from thor.http.protocol.server_connection import DELIVERS
from thor.http.protocol.state import Cycle
from thor.http.protocol.writer import closing_response
from thor.http.server.exchange import ClientGoneError, HttpServerExchange, ServerOwner, notify_error
from thor.http.server.h2c import PREFACE, SWITCH_FIELDS, h2c_upgrade_fields
from thor.http.server.rates import WATCH_AFTER, RateWindow
from thor.tcp import ConnState, TcpConnection

__all__ = ["HttpServerConnection", "Wait"]

log = logging.getLogger("thor.http.server")


class Wait(enum.Enum):
    """What a connection's deadline is waiting for."""

    NOTHING = "nothing"  # the application has the floor
    REQUEST = "request"  # idle keep-alive: the next request
    HEAD = "head"  # the rest of a request head (slowloris)
    BODY = "body"  # more of the request body
    OUTPUT = "output"  # the client to read what we sent
    DRAIN = "drain"  # the client to take what the kernel holds of a whole response


# Module constants: in CPython 3.11 reading ``Wait.BODY`` costs ~8 times a global.
_NOTHING = Wait.NOTHING
_REQUEST = Wait.REQUEST
_HEAD = Wait.HEAD
_BODY = Wait.BODY
_OUTPUT = Wait.OUTPUT
_DRAIN = Wait.DRAIN
_FRAMING_LENGTH = Framing.LENGTH
_FRAMING_CHUNKED = Framing.CHUNKED
_FRAMING_NONE = Framing.NONE
_FRAMING_TUNNEL = Framing.TUNNEL
_PARSER_HEAD = ParserState.HEAD
_PARSER_HELD = ParserState.HELD
_PARSER_TUNNEL = ParserState.TUNNEL
_IDLE = Cycle.IDLE
_EXPECTING = Cycle.EXPECTING
_CLOSED_CYCLE = Cycle.CLOSED
_SWITCHED = Cycle.SWITCHED
_CLOSED = ConnState.CLOSED


class HttpServerConnection(EventEmitter):
    """One client connection; see the module docstring."""

    def __init__(self, server: ServerOwner, tcp_conn: TcpConnection) -> None:
        super().__init__()
        self.server = server
        self.tcp_conn = tcp_conn
        self.loop = server.loop
        self.protocol = ServerConnection(
            max_request_line=server.max_request_line,
            max_field_section=server.max_field_section,
            max_fields=server.max_fields,
            max_body_size=server.max_body_size,
        )
        self.parser = self.protocol.parser
        self.exchange: HttpServerExchange | None = None  # the one being answered
        self._reading: HttpServerExchange | None = None  # the one whose request is read
        self.served = 0
        self._body_paused = False
        self._dispatching = False
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._out_size = 0
        self._wait = _REQUEST
        self._deadline = self.loop.time() + server.idle_timeout
        self._rate = RateWindow()  # the body's, or the output's of ``_rate.subject``
        self._timer: thor.loop.ScheduledEvent | None = self.loop.schedule(
            server.idle_timeout, self._on_timer
        )
        # The first read goes through _on_first_data (h2c prior knowledge), later ones not.
        tcp_conn.on("data", self._on_first_data)
        tcp_conn.on("close", self._on_peer_close)
        tcp_conn.on("disconnect", self._on_disconnect)
        tcp_conn.on("pause", self._on_output_pause)

    @property
    def is_idle(self) -> bool:
        """No exchange in progress and no partial request buffered."""
        return self.exchange is None and self._reading is None and self.protocol.is_idle

    # ------------------------------------------------------------ deadlines

    def expect(self, wait: Wait, seconds: float | None) -> None:
        """Wait for ``wait`` at most ``seconds`` from now (None: keep the deadline)."""
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

    def _expect_body(self, exchange: HttpServerExchange) -> None:
        """Wait for the request body: progress within ``body_timeout``, and at least
        ``min_body_rate`` bytes per second over each ``min_rate_window`` (the first
        window is the grace period; Kestrel's MinRequestBodyDataRate)."""
        server = self.server
        self.expect(_BODY, server.body_timeout)
        if server.min_body_rate > 0:
            # The window starts now (or again after a pause: time the application did not
            # read is not the client's).
            self._start_rate_window(exchange.req_body_bytes)

    def _start_rate_window(self, progress: int, subject: Any = None) -> None:
        """Measure a data rate from now, ``progress`` bytes having moved (see ``rates.py``)."""
        now = self.loop.time()
        self._rate.start(now, progress, subject)
        window = self.server.min_rate_window
        timer = self._timer
        if timer is None or timer.callback is None or timer.when > now + window:
            if timer is not None:
                timer.delete()
            self._timer = self.loop.schedule(window, self._on_timer)

    def _rate_kept(self, wait: Wait, now: float) -> bool:
        """The minimum data rate check of the body or output wait; False: cut."""
        server = self.server
        if wait is _BODY:
            exchange = self._reading
            if exchange is None or self._rate.kept(
                now, server.min_body_rate, server.min_rate_window, exchange.req_body_bytes
            ):
                return True
            # Each byte is progress, so body_timeout never fires for a trickle: the rate does.
            slow = f"request body slower than {server.min_body_rate:g} bytes/s"
            self._reject(error.RequestTimeoutError(slow))
            return False
        tcp_conn, exchange = self.tcp_conn, self.exchange
        if wait is _DRAIN and not rates.kernel_holds(tcp_conn):  # the client has it all: done
            if self.protocol.state is _IDLE and not server.draining:
                self.expect(_REQUEST, server.idle_timeout)
            else:
                self.close()
            return False
        if exchange is not None and exchange is not self._rate.subject:  # measure it afresh
            self._rate.start(now, rates.output_progress(tcp_conn, exchange), exchange)
            return True
        rate, window = server.min_response_rate, server.min_rate_window
        if rates.response_rate_kept(self._rate, tcp_conn, rate, window, now):
            return True  # (a finished response goes on being measured until delivered)
        # A reset, so the kernel drops what it holds for this client too (issue 16).
        self.abort(ClientGoneError("response read too slowly"), reset=True)
        return False

    def _watch_drain(self, exchange: HttpServerExchange | None) -> bool:
        """If the kernel holds some of a response handed over whole, watch it (``rates.py``)."""
        if self.server.min_response_rate <= 0 or exchange is None or not self.tcp_conn.unsent():
            return False
        self._wait, self._deadline = _DRAIN, float("inf")  # the rate is the limit
        self._start_rate_window(rates.output_progress(self.tcp_conn, exchange), exchange)
        return True

    def _on_timer(self) -> None:
        self._timer = None
        wait = self._wait
        if wait is _NOTHING or self.tcp_conn.state is _CLOSED:
            return
        now = self.loop.time()
        deadline = self._deadline
        if now < deadline:
            server = self.server
            if (wait is _BODY and server.min_body_rate > 0) or (
                (wait is _OUTPUT or wait is _DRAIN) and server.min_response_rate > 0
            ):
                if not self._rate_kept(wait, now):
                    return
                deadline = min(deadline, self._rate.since + server.min_rate_window)
            self._timer = self.loop.schedule(deadline - now, self._on_timer)
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

    def _on_first_data(self, data: bytes) -> None:
        """The connection's first bytes: the HTTP/2 preface (h2c with prior knowledge, RFC
        9113 §3.3) hands it to HTTP/2; anything else is HTTP/1.1, read by ``_on_data`` from
        now on (so the check costs once per connection, never per request)."""
        tcp_conn = self.tcp_conn
        tcp_conn.remove_listener("data", self._on_first_data)
        tcp_conn.on("data", self._on_data)
        if data[:4] == b"PRI " and self.server.h2c and PREFACE.startswith(data[:24]):
            self.server.switch_to_h2(self, data)
            self.detach()
            return
        self._on_data(data)

    def _on_data(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._dispatch()
        if self.exchange is None and self.parser.state is _PARSER_HEAD:
            if self._wait is not _HEAD:
                self.expect(_HEAD, self.server.header_timeout)
        elif self._wait is _BODY:
            self.expect(_BODY, self.server.body_timeout)

    def _dispatch(self) -> None:
        """Deliver pending events until the protocol (or the body's pause) holds one."""
        if self._dispatching:
            return  # the outer call goes on with the new state
        self._dispatching = True
        protocol = self.protocol
        pending = protocol.pending
        done = 0
        try:
            for event in pending:
                cls = event.__class__
                if cls not in DELIVERS[protocol.state]:
                    break  # a pipelined request waits for the response before it
                if cls is Body:
                    if self._body_paused:
                        break
                    reading = self._reading
                    assert reading is not None
                    data = event.data  # type: ignore[union-attr]
                    reading.req_body_bytes += len(data)
                    try:
                        reading.emit("request_body", data)
                    except Exception:
                        self._app_failed(reading)
                elif cls is End:
                    self._request_done(event.trailers)  # type: ignore[union-attr]
                elif cls is RequestHead:
                    self._request_start(event)  # type: ignore[arg-type]
                else:  # Invalid
                    self._reject(event.error, self._reading)  # type: ignore[union-attr]
                done += 1
                if protocol.state is _CLOSED_CYCLE:
                    done = len(pending)
                    break
        finally:
            self._dispatching = False
            if done:
                del pending[:done]
            if self._out:
                self.flush()
        # Read no more while events wait, the body is paused, or the parser holds what
        # follows an Upgrade / CONNECT request for the response to decide (bounded). Once
        # switched (which only a HELD or TUNNEL parser allows), the connection is its new
        # owner's: leave its reading alone.
        pstate = self.parser.state
        if pstate is _PARSER_HELD or pstate is _PARSER_TUNNEL:
            if protocol.state is not _SWITCHED:
                self.tcp_conn.pause(True)
        else:
            self.tcp_conn.pause(bool(pending) or self._body_paused)

    def _request_start(self, head: RequestHead) -> None:
        protocol = self.protocol
        exchange = HttpServerExchange(self, head, protocol.start_request(head))
        self.exchange = self._reading = exchange
        self.served += 1
        framing = head.framing
        if framing is _FRAMING_NONE:
            # No body: the request is whole already, so a handler may answer from
            # request_start and keep the connection (request_done still follows).
            exchange.req_complete = True
            # An Upgrade request (the parser holds what follows it): maybe h2c.
            if self.parser.state is _PARSER_HELD and self._upgrade_to_h2c(exchange, head):
                return
            self._wait = _NOTHING
        elif framing is _FRAMING_LENGTH or framing is _FRAMING_CHUNKED:
            self._expect_body(exchange)
        else:
            self._wait = _NOTHING
        try:
            self.server.emit("exchange", exchange)
            exchange.emit("request_start", head.method, head.target, head.headers)
        except Exception:
            self._app_failed(exchange)
            return
        if framing is _FRAMING_NONE:
            return  # complete at its head: neither a tunnel nor a 100 Continue to send
        if framing is _FRAMING_TUNNEL:
            # CONNECT reaches an HTTP server that is no proxy: RFC 9110 §9.3.6 lets it refuse.
            # A handler that serves it answers (a 2xx, then take_over) from request_start.
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
        if protocol.state is _EXPECTING and not self._body_paused:
            self.write(protocol.send_continue())  # RFC 9110 §10.1.1

    def _upgrade_to_h2c(self, exchange: HttpServerExchange, head: RequestHead) -> bool:
        """``Upgrade: h2c`` with one ``HTTP2-Settings`` (RFC 7540 §3.2): answer 101 and
        serve the connection as HTTP/2, the request becoming stream 1.  Requests with a
        body keep HTTP/1.1 (the server may ignore Upgrade, RFC 9110 §7.8)."""
        server = self.server
        if not server.h2c_upgrade or server.draining:
            return False
        fields = h2c_upgrade_fields(head)
        if fields is None:
            return False
        self.protocol.end_request()
        self._reading = None
        exchange.response_start(101, b"Switching Protocols", list(SWITCH_FIELDS))
        switched = exchange.take_over()
        try:
            server.switch_to_h2(self, switched.leftover, fields)
        except Exception as err:  # a bad HTTP2-Settings: too late for HTTP/1.1 (101 sent)
            log.info("h2c upgrade from %r failed: %s", self.tcp_conn.address, err)
            self.tcp_conn.abort()
        return True

    def _request_done(self, trailers: Any) -> None:
        exchange = self._reading
        assert exchange is not None
        self._reading = None
        self.protocol.end_request()
        exchange.req_complete = True
        if self._wait is _BODY:
            self._wait = _NOTHING
        try:
            exchange.emit("request_done", trailers)
        except Exception:
            self._app_failed(exchange)
        if exchange.finished and exchange is not self.exchange:
            exchange.forget_listeners()  # answered before its request was all read

    def _app_failed(self, exchange: HttpServerExchange) -> None:
        log.exception("error in the handler of %r", exchange)
        if exchange.finished:
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
            if self.protocol.state is _EXPECTING:
                self.write(self.protocol.send_continue())
            self._expect_body(exchange)
        self._dispatch()

    def _on_peer_close(self) -> None:
        if self.protocol.receive_eof():
            self._dispatch()
        exchange = self.exchange
        if exchange is None:
            if not self.protocol.pending:
                self.close()
        elif exchange.req_complete and not exchange.finished:
            if self._delivered(exchange):
                # The client has every byte the framing promised and left before the app
                # called response_done (a WSGI body's slow close(), say): a response the
                # client received is complete, never aborted.
                exchange.finish(True)
                self.close()
                return
            # Like asyncio-based servers, an EOF while the response is pending means the
            # client has gone: the handler gets ``error`` (a proxy cancels its upstream).
            self.abort(ClientGoneError("the client closed the connection"))

    def _delivered(self, exchange: HttpServerExchange) -> bool:
        """Whether the client has had the whole response: its framing is satisfied and
        nothing of it waits in our queue or the TCP connection's buffer."""
        return exchange.response_whole and not self._out and not self.tcp_conn.write_buffer_size

    def _on_disconnect(self) -> None:
        self._stop_timer()
        exchange = self.exchange
        self.exchange = self._reading = None
        self.protocol.close()
        self.protocol.pending = []
        self.server.connection_closed(self)
        if exchange is not None and not exchange.finished:
            exchange.finish(False)
            notify_error(exchange, ClientGoneError())
            exchange.forget_listeners()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self._wait = _NOTHING

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
        size = self._out_size
        self._out_size = 0
        out = self._out
        if out:
            if len(out) == 1:
                self.tcp_conn.write(out[0])
            elif size <= 65536:
                self.tcp_conn.write(b"".join(out))  # small: one buffer, one send
            else:
                # A large body is handed over by reference: joining it to its head would
                # copy it per connection, and a slow reader would hold that copy (issue 16,
                # finding 2: 1000 slow readers of one 1 MiB response held 1.7 GB).
                write = self.tcp_conn.write
                for piece in out:
                    write(piece)
            out.clear()

    def _on_output_pause(self, paused: bool) -> None:
        exchange = self.exchange
        if paused:
            self.expect(_OUTPUT, self.server.write_timeout)
            if self.server.min_response_rate > 0:
                # Kestrel's MinResponseDataRate: while our buffer is full, the client must
                # take min_response_rate bytes/s, however often it reads a few.
                self._start_rate_window(rates.output_progress(self.tcp_conn, exchange), exchange)
        elif self._wait is _OUTPUT:
            self._wait = _NOTHING if exchange is not None else _REQUEST
            if exchange is None and not self._watch_drain(self._rate.subject):
                self.expect(_REQUEST, self.server.idle_timeout)
        if exchange is not None:
            try:
                exchange.emit("pause", paused)
            except Exception:
                self._app_failed(exchange)
        self.emit("pause", paused)

    def exchange_finished(self, exchange: HttpServerExchange) -> None:
        """The response of ``exchange`` is complete: flush, then next request or close."""
        self.flush()
        if exchange is not self.exchange:
            return
        self.exchange = None
        if self._reading is not exchange:  # else request_done is still to come
            exchange.forget_listeners()
        self._body_paused = False
        protocol = self.protocol
        watch = exchange.res_bytes > WATCH_AFTER  # see _watch_drain
        if protocol.state is not _IDLE or (self.server.draining and not protocol.pending):
            if not (watch and self._watch_drain(exchange)):
                self.close()
            return
        if self._wait is not _OUTPUT and not (watch and self._watch_drain(exchange)):
            self.expect(_REQUEST, self.server.idle_timeout)
        if not self._dispatching:
            self._dispatch()

    # ------------------------------------------------------------ switching

    def detach(self) -> None:
        """Let go of the TCP connection (a protocol switch took it over): stop listening to
        it and timing it, leave the server's set, and resume reading for the new owner."""
        self._stop_timer()
        tcp_conn = self.tcp_conn
        tcp_conn.remove_listener("data", self._on_data)
        tcp_conn.remove_listener("close", self._on_peer_close)
        tcp_conn.remove_listener("disconnect", self._on_disconnect)
        tcp_conn.remove_listener("pause", self._on_output_pause)
        self.exchange = self._reading = None
        self._body_paused = False
        self.server.connection_closed(self)
        tcp_conn.pause(False)

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
        if exchange is not None and not exchange.finished:
            if not exchange.req_complete:
                notify_error(exchange, err)
            if exchange.started:
                self.abort(None)
                return
            exchange.finish(False)
        self.write(closing_response(err.as_response(), self.server.extra_fields(False, False)))
        self.close()

    def close(self) -> None:
        """Flush what is queued and close (lingering, see thor.tcp)."""
        self.protocol.close()
        self._wait = _NOTHING
        self.flush()
        self.tcp_conn.close()

    def drain(self) -> None:
        """Graceful shutdown began.  The exchange in progress, if any, ends with
        ``Connection: close`` (``exchange_finished`` reads ``server.draining``).

        An idle keep-alive connection is not closed now: its client may be sending the
        next request at this moment, and a FIN crossing it loses that request (the client
        sees the connection end unanswered; issue 16, point 3: the read errors of wrk
        across SIGHUP).  It stays until that request comes, which is answered with
        ``Connection: close``, or until its keep-alive deadline, when it would have been
        closed anyway -- the race left is the one of every idle close, which clients
        handle by retrying on a new connection (RFC 9112 §9.3.1) -- but no later than
        the server's ``drain_idle_until``."""
        if self.is_idle and self._wait is _REQUEST:
            limit = self.server.drain_idle_until
            if self._deadline > limit:
                self.expect(_REQUEST, max(0.0, limit - self.loop.time()))

    def abort(self, err: error.HttpError | None, reset: bool = False) -> None:
        """Close at once; the current exchange, if any, gets ``error``. ``reset``: with a TCP
        reset, dropping what the kernel still holds for the client as well."""
        self.protocol.close()
        self._out.clear()
        if reset:
            self.tcp_conn.reset()
        else:
            self.tcp_conn.abort()
        del err
