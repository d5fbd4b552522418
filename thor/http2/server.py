"""HTTP/2 served from ``HttpServer``: one connection's IO around the sans-IO core.

Theory of operation.  ``HttpServer`` gives a connection to :class:`H2ServerConnection` when
TLS agreed on ALPN ``h2`` (``HttpServer.protocols["h2"]``), when a cleartext connection
opens with the HTTP/2 preface (h2c with prior knowledge, RFC 9113 §3.3), or after a 101 to
``Upgrade: h2c`` (RFC 7540 §3.2).  It feeds what it reads to an
:class:`~thor.http2.protocol.H2Connection` and dispatches the events: each request head
becomes an :class:`~thor.http2.exchange.H2Exchange`, emitted as the server's ``exchange``
event exactly as HTTP/1.1's are, so every handler serves HTTP/2 unchanged.  What the core
queues is written once per read (or once per loop iteration for writes made outside a
read: timers, worker threads' results).

Backpressure, both ways.  Received DATA is acknowledged (the window reopened) only once the
exchange has delivered it, so an application that pauses its request body closes the
client's window.  When the transport's write buffer is over its high-water mark, reading
stops (a peer that does not read gets no new work done for it) and every exchange gets
``pause(True)``; a stream whose peer window is closed gets ``pause(True)`` alone.

Timers.  The core has no clock, so one timer per connection, firing every ``tick`` seconds,
checks: the connection idle (no stream) past ``idle_timeout`` (GOAWAY, close); the preface
not complete within ``header_timeout``; a request body without progress for
``body_timeout`` (RST_STREAM CANCEL); output stuck behind a closed window (the zero-window
stall, CVE-2019-9517) or an unread transport for ``write_timeout`` (the stream is reset, or
the connection closed when the connection window or the transport is stuck).

Protocol errors are logged in one line each (``thor.http2.server``), never a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.exchange import TlsInfo
from thor.http2.exchange import H2Exchange
from thor.http2.protocol import (
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    H2Config,
    H2Connection,
    H2ConnectionError,
    RequestReceived,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from thor.tcp import ConnState, TcpConnection

__all__ = ["H2ServerConnection", "h2_config_of"]

log = logging.getLogger("thor.http2.server")

_CLOSED = ConnState.CLOSED


class StreamGoneError(error.HttpError):
    """The client reset the stream (or the connection ended) before the response was done."""

    desc = "Client reset the stream"
    status = 499


def h2_config_of(server: Any) -> H2Config:
    """The server's ``h2_config`` setting, or the core's defaults."""
    config = getattr(server, "h2_config", None)
    return config if isinstance(config, H2Config) else H2Config()


def _code_name(code: int) -> str:
    return code.name if isinstance(code, ErrorCode) else str(code)


def _server_field_lines(extra: bytes) -> list[tuple[bytes, bytes]]:
    """The server's Date / Server lines (HTTP/1.1 text) as HTTP/2 fields."""
    out = []
    for line in extra.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            out.append((name.lower(), value.strip()))
    return out


class H2ServerConnection(EventEmitter):
    """One HTTP/2 connection of an ``HttpServer``; see the module docstring.

    ``received``: bytes already read from the transport (the preface, for h2c with prior
    knowledge).  ``upgrade``: for ``Upgrade: h2c``, the ``HTTP2-Settings`` value and the
    HTTP/1.1 request's fields (as HTTP/2 fields), which become stream 1.
    """

    http_version = "2"  # what metrics count it as (an HTTP/1.1 connection has none)

    def __init__(
        self,
        server: Any,
        tcp_conn: TcpConnection,
        received: bytes = b"",
        upgrade: tuple[bytes, list[tuple[bytes, bytes]]] | None = None,
    ) -> None:
        super().__init__()
        self.server = server
        self.tcp_conn = tcp_conn
        self.loop: thor.loop.Loop = server.loop
        self.h2 = H2Connection(h2_config_of(server))
        self.exchanges: dict[int, H2Exchange] = {}
        self.served = 0
        self._blocked: dict[int, H2Exchange] = {}  # streams waiting for the peer's window
        self._holding: list[H2Exchange] = []  # streams holding a body piece (see flush)
        self._dispatching = False
        self._flush_scheduled = False
        self._closing = False
        self._transport_paused = False
        self._paused_since = 0.0
        now = self.loop.time()
        self._started = now
        self._idle_since = now
        self._preface_done = False
        self._extra: tuple[bytes, list[tuple[bytes, bytes]]] = (b"", [])
        tcp_conn.on("data", self._on_data)
        tcp_conn.on("close", self._on_peer_close)
        tcp_conn.on("disconnect", self._on_disconnect)
        tcp_conn.on("pause", self._on_output_pause)
        self._tick = max(
            0.05, min(server.idle_timeout, server.header_timeout, server.write_timeout) / 4
        )
        self._timer: thor.loop.ScheduledEvent | None = self.loop.schedule(
            self._tick, self._on_timer
        )
        if upgrade is not None:
            self.h2.initiate_upgrade_connection(upgrade[0])
            self._start_stream(1, upgrade[1], upgraded=True)
        else:
            self.h2.initiate_connection()
        if server.draining:
            self.drain()
        if received:
            self._on_data(received)
        else:
            self.flush()

    # ------------------------------------------------------------ the server's view

    @property
    def is_idle(self) -> bool:
        return not self.exchanges

    def tls_info(self) -> TlsInfo | None:
        sock = getattr(self.tcp_conn, "ssl_object", None)
        if sock is None:
            return None
        cipher = sock.cipher()
        return TlsInfo(
            sock.version(),
            cipher[0] if cipher else None,
            sock.selected_alpn_protocol(),
            sock.getpeercert(binary_form=True),
        )

    def server_fields(self, headers: Any) -> list[tuple[bytes, bytes]]:
        """The Date and Server fields the server adds to a response head."""
        has_date = has_server = False
        for name, _ in headers:
            if len(name) in (4, 6):
                lname = name.lower()
                has_date = has_date or lname in (b"date", "date")
                has_server = has_server or lname in (b"server", "server")
        extra = self.server.extra_fields(has_date, has_server)
        cached = self._extra
        if cached[0] != extra:  # the Date line changes once a second
            cached = self._extra = (extra, _server_field_lines(extra))
        return cached[1]

    # ------------------------------------------------------------------- input

    def _on_data(self, data: bytes) -> None:
        self._dispatching = True
        try:
            try:
                events = self.h2.receive_data(data)
            except Exception:  # a defect of the core: this connection cannot go on
                log.exception("HTTP/2 input from %r failed", self.tcp_conn.address)
                self.abort(None)
                return
            last = len(events) - 1
            for index, event in enumerate(events):
                if event.__class__ is RequestReceived:
                    # A head with END_STREAM: the request is whole before the app sees it
                    # (as HTTP/1.1 tells a bodiless request), so adapters skip body plumbing.
                    sid = event.stream_id
                    after = events[index + 1] if index < last else None
                    whole = isinstance(after, StreamEnded) and after.stream_id == sid
                    self._start_stream(sid, event.headers, whole)
                else:
                    self._dispatch(event)
        finally:
            self._dispatching = False
        self.flush()
        self._maybe_done()

    def _dispatch(self, event: Any) -> None:
        cls = event.__class__
        if cls is StreamEnded:
            exchange = self.exchanges.get(event.stream_id)
            if exchange is not None and not exchange.request_ended:
                try:
                    exchange.receive_end([])
                except Exception:
                    self._app_failed(exchange)
        elif cls is DataReceived:
            exchange = self.exchanges.get(event.stream_id)
            if exchange is None:
                self.h2.acknowledge_received_data(event.flow_controlled_length, 0)
                return
            try:
                exchange.receive_body(event.data, event.flow_controlled_length)
            except Exception:
                self._app_failed(exchange)
        elif cls is TrailersReceived:
            self._end_request(event.stream_id, event.headers)
        elif cls is WindowUpdated or cls is SettingsChanged:
            self._preface_done = True
            self._window_opened()
        elif cls is StreamReset:
            self._on_reset(event)
        elif cls is ConnectionTerminated:
            self._on_terminated(event)

    def _start_stream(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]],
        whole: bool = False,
        upgraded: bool = False,
    ) -> None:
        self._preface_done = True
        exchange = H2Exchange(self, stream_id, fields)
        if whole or upgraded:
            exchange.req_complete = True
        self.exchanges[stream_id] = exchange
        self.served += 1
        server = self.server
        try:
            server.emit("exchange", exchange)
            exchange.emit("request_start", exchange.method, exchange.uri, exchange.req_hdrs)
            if upgraded:  # no StreamEnded will come: the HTTP/1.1 request was whole
                exchange.receive_end([])
        except Exception:
            self._app_failed(exchange)

    def _end_request(self, stream_id: int, trailers: list[tuple[bytes, bytes]]) -> None:
        exchange = self.exchanges.get(stream_id)
        if exchange is not None and not exchange.request_ended:
            self._guarded(exchange, exchange.receive_end, trailers)

    def _guarded(self, exchange: H2Exchange, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception:
            self._app_failed(exchange)

    def _app_failed(self, exchange: H2Exchange) -> None:
        log.exception("error in the handler of %r", exchange)
        if exchange.finished:
            return
        if exchange.started:
            exchange.abort()
        else:
            err = error.HttpError("the application failed")
            exchange.respond(
                err.status,
                err.desc,
                [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(err.desc))],
                err.desc.encode(),
            )

    def _on_reset(self, event: StreamReset) -> None:
        if not event.remote:
            log.info(
                "HTTP/2 stream %d from %r reset: %s",
                event.stream_id,
                self.tcp_conn.address,
                _code_name(event.error_code),
            )
        exchange = self.exchanges.get(event.stream_id)
        if exchange is not None:
            self._stream_gone(exchange, StreamGoneError("the client reset the stream"))

    def _stream_gone(self, exchange: H2Exchange, err: error.HttpError) -> None:
        if exchange.finished:
            return
        if exchange.listeners("error"):
            try:
                exchange.emit("error", err)
            except Exception:
                log.exception("error in the error handler of %r", exchange)
        exchange.finish(False)

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        if event.remote:
            if event.error_code:
                log.info(
                    "HTTP/2 client %r sent GOAWAY %s",
                    self.tcp_conn.address,
                    _code_name(event.error_code),
                )
            self._closing = True  # no new streams will come; finish the open ones
            return
        log.warning(
            "HTTP/2 connection error from %r: %s: %s",
            self.tcp_conn.address,
            _code_name(event.error_code),
            event.detail,
        )
        self.close()

    # ----------------------------------------------------------- flow control

    def acknowledge(self, length: int, stream_id: int) -> None:
        self.h2.acknowledge_received_data(length, stream_id)
        self.changed()

    def blocked(self, exchange: H2Exchange, blocked: bool) -> None:
        if blocked:
            if exchange.stream_id not in self._blocked:
                self._blocked[exchange.stream_id] = exchange
                exchange.blocked_since = self.loop.time()
                if not self._transport_paused:
                    self._emit_pause(exchange, True)
        elif self._blocked.pop(exchange.stream_id, None) is not None:
            exchange.blocked_since = 0.0
            if not self._transport_paused:
                self._emit_pause(exchange, False)

    def _window_opened(self) -> None:
        for exchange in list(self._blocked.values()):
            if exchange.finished:
                self._blocked.pop(exchange.stream_id, None)
            elif exchange.window_opened():
                self.blocked(exchange, False)

    def _emit_pause(self, exchange: H2Exchange, paused: bool) -> None:
        if exchange.finished:
            return
        try:
            exchange.emit("pause", paused)
        except Exception:
            self._app_failed(exchange)

    def _on_output_pause(self, paused: bool) -> None:
        # The peer does not read what we write: read no more from it either, and tell the
        # producers (RFC 9113 §10.5: a peer must not make us buffer without bound).
        self._transport_paused = paused
        self._paused_since = self.loop.time()
        self.tcp_conn.pause(paused)
        for exchange in list(self.exchanges.values()):
            if exchange.stream_id not in self._blocked:
                self._emit_pause(exchange, paused)

    # ------------------------------------------------------------------ output

    def changed(self) -> None:
        """The core has bytes to send: at the end of this read, or of this iteration."""
        if not self._dispatching and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def hold(self, exchange: H2Exchange) -> None:
        """``exchange`` holds a body piece: release it at the next flush."""
        self._holding.append(exchange)
        self.changed()

    def flush(self) -> None:
        self._flush_scheduled = False
        holding = self._holding
        if holding:
            self._holding = []
            for exchange in holding:
                exchange.release()
        data = self.h2.data_to_send()
        if data and self.tcp_conn.state is not _CLOSED:
            self.tcp_conn.write(data)
        self._maybe_done()

    def stream_finished(self, exchange: H2Exchange) -> None:
        self.exchanges.pop(exchange.stream_id, None)
        self._blocked.pop(exchange.stream_id, None)
        if not self.exchanges:
            self._idle_since = self.loop.time()
        self.changed()

    def _maybe_done(self) -> None:
        if self.exchanges or self.tcp_conn.state is _CLOSED:
            return
        h2 = self.h2
        if h2.is_drained or (self._closing and not h2.streams):
            self.close()

    # ------------------------------------------------------------------ timers

    def _on_timer(self) -> None:
        self._timer = None
        if self.tcp_conn.state is _CLOSED:
            return
        now = self.loop.time()
        server = self.server
        if self._transport_paused and now - self._paused_since > server.write_timeout:
            log.info("HTTP/2 client %r does not read; closing", self.tcp_conn.address)
            self.abort(None)
            return
        if not self._preface_done and now - self._started > server.header_timeout:
            log.info("HTTP/2 client %r: no preface in time; closing", self.tcp_conn.address)
            self._goaway(ErrorCode.NO_ERROR)
            return
        if not self.exchanges and now - self._idle_since > server.idle_timeout:
            self._goaway(ErrorCode.NO_ERROR)
            return
        self._check_streams(now)
        self._timer = self.loop.schedule(self._tick, self._on_timer)

    def _check_streams(self, now: float) -> None:
        server = self.server
        for exchange in list(self.exchanges.values()):
            if exchange.blocked_since and now - exchange.blocked_since > server.write_timeout:
                # The zero-window stall (CVE-2019-9517): the peer keeps the window shut.
                if self.h2.outbound_window <= 0:
                    log.info("HTTP/2 client %r keeps its window closed", self.tcp_conn.address)
                    self._goaway(ErrorCode.ENHANCE_YOUR_CALM)
                    return
                log.info(
                    "HTTP/2 stream %d of %r: window closed too long; reset",
                    exchange.stream_id,
                    self.tcp_conn.address,
                )
                self._reset(exchange, ErrorCode.CANCEL)
            elif (
                not exchange.req_complete
                and not exchange.body_paused
                and now - exchange.last_progress > server.body_timeout
            ):
                log.info(
                    "HTTP/2 stream %d of %r: request body stalled; reset",
                    exchange.stream_id,
                    self.tcp_conn.address,
                )
                self._reset(exchange, ErrorCode.CANCEL)

    def _reset(self, exchange: H2Exchange, code: ErrorCode) -> None:
        if exchange.stream_id in self.h2.streams:
            self.h2.reset_stream(exchange.stream_id, code)
        self._stream_gone(exchange, error.RequestTimeoutError("stream timed out"))
        self.flush()

    # ----------------------------------------------------------------- closing

    def drain(self) -> None:
        """Graceful shutdown (RFC 9113 §6.8): GOAWAY, finish the streams, then close."""
        if self.tcp_conn.state is _CLOSED or self.h2.terminated:
            return
        self.h2.start_drain()
        self.changed()

    def _goaway(self, code: ErrorCode) -> None:
        if not self.h2.terminated:
            try:
                self.h2.close_connection(code)
            except H2ConnectionError:
                pass
        self.close()

    def close(self) -> None:
        """Write what the core has queued and close (lingering, see thor.tcp)."""
        if self.tcp_conn.state is _CLOSED:
            return
        data = self.h2.data_to_send()
        if data:
            self.tcp_conn.write(data)
        self.tcp_conn.close()

    def abort(self, err: Any) -> None:
        self.tcp_conn.abort()

    def _on_peer_close(self) -> None:
        self.close()

    def _on_disconnect(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self.server.connection_closed(self)
        for exchange in list(self.exchanges.values()):
            self._stream_gone(exchange, StreamGoneError("the connection closed"))
        self.exchanges.clear()
        self._blocked.clear()
