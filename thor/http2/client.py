"""HTTP/2 for ``thor.HttpClient``: one connection multiplexing many exchanges (RFC 9113).

Theory of operation.  An origin spoken to in HTTP/2 (an ``h2c://`` URL, prior knowledge,
RFC 9113 §3.3; or ``https://`` when TLS agreed on ALPN ``h2``, §3.2) has an
:class:`H2OriginPool` in the client's pools instead of an HTTP/1.1 ``OriginPool``.  It keeps
one :class:`H2ClientConnection` at a time and puts each exchange on a stream of it, up to
the server's SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2); the others wait in order.  The
exchange is the caller's ``HttpClientExchange``, unchanged: its ``on_stream`` side sends the
request and turns the connection's calls into the usual events, so a caller (the gateway's
proxy) does not know which version carried it.

The connection feeds what it reads to the sans-IO ``H2Connection`` (client role) and hands
each event to its stream's exchange; what the core queues is written once per read, or at
once for a call made outside a read.  Flow control: the core sends DATA only within the
server's windows, and the exchange keeps the rest until a ``WindowUpdated`` (§6.9); received
DATA is acknowledged only once the exchange's caller has taken it.

GOAWAY (§6.8): no new stream goes on the connection; streams above its last stream id were
not processed and are retried on a new connection (§8.7), the others may finish, and the
connection closes when none is left.  One timer per connection checks the read timeout of
its streams and its own idle timeout.
"""

from __future__ import annotations

import http
from collections import deque
from typing import TYPE_CHECKING

import thor.loop
from thor.http import error
from thor.http.headers import split_list
from thor.http2.protocol import (
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    Event,
    H2Config,
    H2Connection,
    InformationalReceived,
    LocalProtocolError,
    ResponseReceived,
    SettingCode,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from thor.http2.protocol.fields import CONNECTION_SPECIFIC
from thor.tcp import TcpClient, TcpConnection

if TYPE_CHECKING:
    from thor.http.client.client import HttpClient
    from thor.http.client.exchange import HttpClientExchange
    from thor.http.client.url import Origin

__all__ = ["H2ClientConnection", "H2OriginPool", "request_fields"]

Fields = list[tuple[bytes, bytes]]

# HTTP/2 has no reason phrase (§8.3.2): the caller gets the usual one for its status.
_PHRASES = {status.value: status.phrase.encode("ascii") for status in http.HTTPStatus}
# Fields never sent on a stream: connection-specific ones (§8.2.2), Host (its value becomes
# :authority, §8.3.1) and Expect (the body is sent at once: no 100-continue to wait for).
_DROPPED = CONNECTION_SPECIFIC | {b"host", b"expect", b"proxy-authorization"}
# Streams opened before the server's SETTINGS arrive (its limit is unknown until then).
_FIRST_STREAMS = 100
_MAX_STREAM_ID = 2**31 - 1


def request_fields(
    method: bytes, scheme: bytes, authority: bytes, target: bytes, headers: Fields
) -> Fields:
    """The request head as HTTP/2 fields: pseudo-header fields first (§8.3.1), names in
    lower case (§8.2), no connection-specific field, ``te`` only as ``trailers`` (§8.2.2)."""
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(token.lower() for token in split_list(value))
    regular: Fields = []
    for name, value in headers:
        lname = name.lower()
        if lname == b"host":
            authority = value
        elif lname == b"te":
            if b"trailers" in {t.lower() for t in split_list(value)}:
                regular.append((b"te", b"trailers"))
        elif lname not in _DROPPED and lname not in named:
            regular.append((lname, value))
    pseudo = [(b":method", method), (b":scheme", scheme), (b":authority", authority)]
    pseudo.append((b":path", target))
    return pseudo + regular


def _fields_of(headers: Fields) -> tuple[bytes, bytes, Fields]:
    """(status, phrase, regular fields) of a response head (``:status`` is the only pseudo-
    header field of a response, checked by the core, §8.3.2)."""
    status = b""
    fields: Fields = []
    for name, value in headers:
        if name == b":status":
            status = value
        else:
            fields.append((name, value))
    return status, _PHRASES.get(int(status), b""), fields


def _code_name(code: int) -> str:
    return code.name if isinstance(code, ErrorCode) else str(code)


class H2ClientConnection:
    """One HTTP/2 connection of an :class:`H2OriginPool`; streams are exchanges."""

    def __init__(self, pool: H2OriginPool, tcp: TcpConnection) -> None:
        self.pool = pool
        self.tcp = tcp
        client = pool.client
        self.loop: thor.loop.Loop = client.loop
        self.h2 = H2Connection(client.h2_config or H2Config(), client_side=True)
        self.scheme = b"https" if pool.origin[0] == "https" else b"http"
        self.exchanges: dict[int, HttpClientExchange] = {}
        self.blocked: set[int] = set()  # streams with request data waiting for a window
        self.reused = False  # a stream has completed on it (retry.py's "reused")
        self.going_away = False  # GOAWAY received (or sent): no new stream
        self.retired = False
        self.settings_received = False
        self.idle_since = self.loop.time()
        self._reading = False
        tcp.on("data", self._on_data)
        tcp.on("close", self._on_close)
        tcp.on("disconnect", self._on_close)
        tcp.on("pause", self._on_write_pause)
        timeouts = [t for t in (client.effective_read_timeout, client.idle_timeout) if t]
        self._tick = max(0.05, min(timeouts) / 4) if timeouts else 0.0
        self._timer: thor.loop.ScheduledEvent | None = None
        if self._tick:
            self._timer = self.loop.schedule(self._tick, self._on_timer)
        self.h2.initiate_connection()
        self._write()

    def __repr__(self) -> str:
        return f"<H2ClientConnection {self.tcp.address!r} streams={len(self.exchanges)}>"

    @property
    def has_room(self) -> bool:
        """May another stream be opened now?"""
        if self.going_away or self.retired or self.h2.next_local_stream_id > _MAX_STREAM_ID:
            return False
        limit = self.h2.peer_settings[SettingCode.MAX_CONCURRENT_STREAMS]
        if not self.settings_received:
            limit = min(limit, _FIRST_STREAMS)
        return len(self.exchanges) < limit

    # --- what exchanges call (on_stream.StreamOwner) ------------------------------------

    def open_stream(
        self, exchange: HttpClientExchange, head: tuple[bytes, bytes, bytes, Fields], end: bool
    ) -> int:
        method, authority, target, headers = head
        fields = request_fields(method, self.scheme, authority, target, headers)
        sid = self.h2.get_next_available_stream_id()
        try:
            self.h2.send_headers(sid, fields, end_stream=end)
        except LocalProtocolError as err:
            raise error.OutputError(str(err)) from None
        self.exchanges[sid] = exchange
        self._write()
        return sid

    def send_data(self, stream_id: int, data: bytes, end: bool) -> int:
        try:
            sent = self.h2.send_data(stream_id, data, end)
        except LocalProtocolError:  # the server closed its side: nothing more is wanted
            return len(data)
        if sent < len(data):
            self.blocked.add(stream_id)
        self._write()
        return sent

    def send_trailers(self, stream_id: int, trailers: Fields) -> None:
        fields = [(n.lower(), v) for n, v in trailers if n.lower() not in _DROPPED]
        try:
            self.h2.send_trailers(stream_id, fields)
        except LocalProtocolError:
            return
        self._write()

    def consumed(self, stream_id: int, length: int) -> None:
        self.h2.acknowledge_received_data(length, stream_id)
        if not self._reading:
            self._write()

    def stream_finished(self, stream_id: int, cancel: bool) -> None:
        """The exchange on ``stream_id`` is over; ``cancel``: reset the stream if it is
        still open (the exchange was cancelled, or its request was not finished)."""
        if self.exchanges.pop(stream_id, None) is None:
            return
        self.blocked.discard(stream_id)
        if cancel and stream_id in self.h2.streams and not self.retired:
            self.h2.reset_stream(stream_id, ErrorCode.CANCEL)
        if not cancel:
            self.reused = True
        if not self.exchanges:
            self.idle_since = self.loop.time()
        if not self._reading:
            self._write()
        if self.going_away and not self.exchanges:
            self.close()
        else:
            self.pool.room(self)

    # --- reading ------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self._reading = True
        try:
            for event in self.h2.receive_data(data):
                self._dispatch(event)
        finally:
            self._reading = False
        self._write()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            exchange = self.exchanges.get(event.stream_id)
            if exchange is None:  # cancelled: the bytes go back to the connection window
                self.h2.acknowledge_received_data(event.flow_controlled_length, 0)
            else:
                exchange.stream_data(event.data, event.flow_controlled_length)
        elif isinstance(event, ResponseReceived | InformationalReceived):
            exchange = self.exchanges.get(event.stream_id)
            if exchange is not None:
                status, phrase, fields = _fields_of(event.headers)
                if isinstance(event, ResponseReceived):
                    exchange.stream_response(status, phrase, fields)
                else:
                    exchange.stream_informational(status, phrase, fields)
        elif isinstance(event, TrailersReceived):
            exchange = self.exchanges.get(event.stream_id)
            if exchange is not None:
                exchange.stream_trailers(event.headers)
        elif isinstance(event, StreamEnded):
            exchange = self.exchanges.get(event.stream_id)
            if exchange is not None:
                exchange.stream_end()
        else:
            self._on_control(event)

    def _on_control(self, event: Event) -> None:
        if isinstance(event, StreamReset):
            self._on_reset(event)
        elif isinstance(event, WindowUpdated):
            if event.stream_id:
                self._unblock([event.stream_id])
            else:
                self._unblock(list(self.blocked))
        elif isinstance(event, SettingsChanged):
            self.settings_received = True
            if SettingCode.INITIAL_WINDOW_SIZE in event.changed:
                self._unblock(list(self.blocked))
            self.pool.room(self)
        elif isinstance(event, ConnectionTerminated):
            self._on_goaway(event)

    def _unblock(self, stream_ids: list[int]) -> None:
        for sid in stream_ids:
            self.blocked.discard(sid)
            exchange = self.exchanges.get(sid)
            if exchange is not None:
                exchange.stream_writable()

    def _on_reset(self, event: StreamReset) -> None:
        exchange = self.exchanges.pop(event.stream_id, None)
        self.blocked.discard(event.stream_id)
        if exchange is None:
            return
        name = _code_name(event.error_code)
        if event.remote:
            # §8.7: REFUSED_STREAM means the request was not processed: safe to retry.
            refused = event.error_code == ErrorCode.REFUSED_STREAM
            err: error.HttpError = error.ConnectError(f"stream refused ({name})")
            if not refused:
                err = error.UpstreamError(f"stream reset by the server ({name})")
            exchange.stream_failed(err, not refused)
        else:  # the response broke a rule of §8 (malformed): this side reset the stream
            exchange.stream_failed(error.UpstreamError(f"malformed response ({name})"), True)
        self.pool.room(self)

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        self.going_away = True
        self.pool.gone(self)
        if not event.remote:  # this side's connection error: nothing more will come
            self._write()
            self._fail_all(error.UpstreamError(f"HTTP/2 connection error: {event.detail}"))
            self.close()
            return
        last = event.last_stream_id
        for sid in [sid for sid in self.exchanges if sid > last]:
            # §6.8: streams above last_stream_id were not processed; retried elsewhere.
            exchange = self.exchanges.pop(sid)
            exchange.stream_failed(error.ConnectError("stream refused by GOAWAY"), False)
        if not self.exchanges:
            self.close()

    def _fail_all(self, err: error.HttpError) -> None:
        exchanges, self.exchanges = self.exchanges, {}
        for exchange in exchanges.values():
            # A connection lost: the stream may have been processed (None).
            exchange.stream_failed(err, None)

    def _on_close(self) -> None:
        self.retire()
        self._fail_all(error.ConnectError("connection closed before the response"))
        self.tcp.abort()

    def _on_write_pause(self, paused: bool) -> None:
        for exchange in list(self.exchanges.values()):
            exchange.stream_writable(paused)

    # --- writing, timers, closing -------------------------------------------------------

    def _write(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.retired:
            self.tcp.write(data)

    def _on_timer(self) -> None:
        self._timer = None
        if self.retired:
            return
        client = self.pool.client
        now = self.loop.time()
        timeout = client.effective_read_timeout
        if timeout:
            for exchange in list(self.exchanges.values()):
                exchange.stream_timeout(now, timeout)
        idle = client.idle_timeout
        if not self.exchanges and (not idle or now - self.idle_since >= idle):
            self.close()
            return
        self._timer = self.loop.schedule(self._tick, self._on_timer)

    def close(self) -> None:
        """GOAWAY (§6.8), then close; streams still open fail."""
        if self.retired:
            return
        self.going_away = True
        self.h2.close_connection(ErrorCode.NO_ERROR)
        self._write()
        self.retire()
        self._fail_all(error.ConnectError("connection closed before the response"))
        self.tcp.close()

    def retire(self) -> None:
        if self.retired:
            return
        self.retired = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self.pool.forget(self)


class H2OriginPool:
    """The exchanges of one origin spoken to in HTTP/2, on one connection at a time.

    The same face as ``OriginPool`` to the client (``acquire``, ``withdraw``,
    ``close_idle``, ``live``, ``idle``)."""

    __slots__ = ("client", "conn", "connecting", "conns", "live", "origin", "waiting")

    def __init__(self, client: HttpClient, origin: Origin) -> None:
        self.client = client
        self.origin = origin
        self.conn: H2ClientConnection | None = None  # the one new streams go on
        self.conns: set[H2ClientConnection] = set()  # open, draining ones included
        self.waiting: deque[HttpClientExchange] = deque()
        self.live = 0  # connections open or being opened (a draining one counts)
        self.connecting = False

    def __repr__(self) -> str:
        return f"<H2OriginPool {self.origin!r} live={self.live} waiting={len(self.waiting)}>"

    @property
    def idle(self) -> list[H2ClientConnection]:
        conn = self.conn
        return [conn] if conn is not None and not conn.exchanges else []

    @property
    def streams(self) -> int:
        """Exchanges on a stream now (metrics)."""
        return sum(len(conn.exchanges) for conn in self.conns)

    def acquire(self, exchange: HttpClientExchange) -> None:
        conn = self.conn
        if conn is not None and not self.waiting and conn.has_room:
            exchange.attach_stream(conn)
            return
        self.client.adopt_pool(self)
        self.waiting.append(exchange)
        if conn is None and not self.connecting:
            self._connect()

    def withdraw(self, exchange: HttpClientExchange) -> None:
        try:
            self.waiting.remove(exchange)
        except ValueError:
            pass

    def close_idle(self) -> None:
        for conn in self.idle:
            conn.close()

    def adopt(self, tcp: TcpConnection, waiting: deque[HttpClientExchange]) -> None:
        """A TLS connection that agreed on ``h2`` (from the HTTP/1.1 pool), with the
        exchanges that were waiting there."""
        self.waiting.extend(waiting)
        if self.conn is not None:
            tcp.abort()  # one connection is enough
            self.room(self.conn)
            return
        self.live += 1
        self._connected(tcp)

    # --- what the connection calls ------------------------------------------------------

    def room(self, conn: H2ClientConnection) -> None:
        """``conn`` may take more streams: give them to the waiting exchanges, in order."""
        waiting = self.waiting
        while waiting and conn is self.conn and conn.has_room:
            waiting.popleft().attach_stream(conn)

    def gone(self, conn: H2ClientConnection) -> None:
        """``conn`` takes no new stream (GOAWAY): the next ones need a new connection."""
        if self.conn is conn:
            self.conn = None
            if self.waiting and not self.connecting:
                self._connect()

    def forget(self, conn: H2ClientConnection) -> None:
        self.live -= 1
        self.conns.discard(conn)
        self.gone(conn)
        if self.live <= 0 and not self.waiting and not self.connecting:
            self.client.drop_pool(self)

    # --- connecting ---------------------------------------------------------------------

    def _connect(self) -> None:
        client = self.client
        self.live += 1
        self.connecting = True
        scheme, host, port = self.origin
        connector: TcpClient
        if scheme == "https":
            import thor.tls

            connector = thor.tls.TlsClient(
                client.loop,
                client.tls_context,
                server_hostname=host,
                handshake_timeout=client.connect_timeout or 10.0,
                alpn_protocols=["h2"],
            )
        else:
            connector = TcpClient(client.loop)
        if client.check_ip is not None:
            connector.check_ip = client.check_ip
        connector.on("connect", self._on_connect)
        connector.on("connect_error", self._on_connect_error)
        connector.connect(host, port, client.connect_timeout or None)

    def _on_connect(self, tcp: TcpConnection) -> None:
        self.connecting = False
        read_size = self.client.read_size
        if read_size:  # as on an HTTP/1.1 connection (thor.http.client.pool): per read
            tcp.read_bufsize = read_size
        if self.origin[0] == "https" and getattr(tcp, "alpn_protocol", None) != "h2":
            tcp.abort()
            self._connect_failed("ssl", "the server did not agree to HTTP/2 (ALPN h2)")
            return
        self._connected(tcp)

    def _connected(self, tcp: TcpConnection) -> None:
        self.conn = conn = H2ClientConnection(self, tcp)
        self.conns.add(conn)
        self.room(conn)

    def _on_connect_error(self, kind: str, code: int, message: str) -> None:
        self.connecting = False
        self._connect_failed(kind, message)

    def _connect_failed(self, kind: str, message: str) -> None:
        from thor.http.client.pool import connect_error

        self.live -= 1
        if self.waiting:
            self.waiting.popleft().connect_failed(connect_error(kind, 0, message), kind)
        if self.waiting and not self.connecting and self.conn is None:
            self._connect()
        elif self.live <= 0 and not self.waiting:
            self.client.drop_pool(self)
