"""The HTTP server: accepts connections and gives each to the class of its protocol.

Theory of operation.  ``HttpServer`` accepts TCP (or TLS) connections and hands each
to the connection class registered for its protocol (:attr:`HttpServer.protocols`, keyed
by the TLS ALPN name; cleartext is ``http/1.1``).  An HTTP/1.1 connection
(:mod:`thor.http.server.connection`) feeds what it reads to the sans-IO
:class:`~thor.http.protocol.ServerConnection` and dispatches the events it lets through.
One exchange is active per connection at a time: the events of a pipelined request wait
(and reading pauses) until the response before it is done, so responses always leave in
request order without buffering them.

Output is corked: what an exchange writes is gathered and handed to the TCP
connection once per loop iteration (or at ``response_done``), so a small
response is one ``send``.

One timer per connection watches a deadline whose meaning follows what the
connection waits for (:class:`Wait`): the next request (``idle_timeout``),
the rest of a request head (``header_timeout``), request body progress
(``body_timeout``, and ``min_body_rate`` bytes per second over each ``min_rate_window``,
so a client trickling a byte at a time is cut however often it sends one), or the client
reading our output (``write_timeout``, and ``min_response_rate`` while it is behind).
Moving a deadline later costs an assignment; the timer re-arms itself when
it fires early.

Errors in what the client sent get a response with the error's status and
``Connection: close``, and are logged.  An exception raised by the
application's listener gets a 500 if nothing was sent yet, else the
connection is aborted; either way it is logged and the server goes on.
"""

from __future__ import annotations

import logging
import ssl
from time import time as wall_time
from typing import Any, Protocol

import thor.loop
from thor.events import EventEmitter
from thor.http import error
from thor.http.protocol.abnf import http_date
from thor.http.protocol.writer import closing_response
from thor.http.server.connection import HttpServerConnection, Wait
from thor.http.server.exchange import as_bytes
from thor.tcp import TcpConnection, TcpServer

__all__ = ["H2", "HTTP11", "HttpServer", "ProtocolConnection", "ServedConnection"]

log = logging.getLogger("thor.http.server")

HTTP11 = "http/1.1"  # the ALPN name of HTTP/1.1 (RFC 7301 §6), and cleartext's protocol
H2 = "h2"  # the ALPN name of HTTP/2 over TLS (RFC 9113 §3.2)


def serve_h2(server: Any, tcp_conn: TcpConnection, **start: Any) -> Any:
    """``protocols["h2"]``: HTTP/2's connection class, imported on first use (a server
    that never sees HTTP/2 never loads the HPACK tables)."""
    from thor.http2.server import H2ServerConnection

    return H2ServerConnection(server, tcp_conn, **start)


class ServedConnection(Protocol):
    """What the server needs of a connection it serves, whatever the protocol."""

    tcp_conn: TcpConnection
    served: int  # exchanges started so far

    @property
    def is_idle(self) -> bool: ...  # no exchange in progress: graceful shutdown may close it

    def close(self) -> None: ...
    def abort(self, err: Any) -> None: ...

    # Optional: ``drain()``, called when graceful shutdown begins (finish what is in
    # progress, then close; HTTP/1.1's also answer an idle connection's next request).  A
    # connection without it is closed at once if idle.


class ProtocolConnection(Protocol):
    """What :attr:`HttpServer.protocols` maps a protocol name to: a class called as
    ``cls(server, tcp_conn)`` for each accepted connection, which serves it from then on
    (emitting the server's ``exchange`` event with an :class:`~thor.http.Exchange` for
    each request) and calls ``server.connection_closed(conn)`` once it is gone."""

    def __call__(self, server: Any, tcp_conn: TcpConnection) -> ServedConnection: ...


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
    # A request body must come at min_body_rate bytes/s or more, and a client whose response
    # fills our write buffer must take min_response_rate bytes/s or more, measured over each
    # window of min_rate_window seconds (the first is a grace period); 0 turns a check off.
    min_body_rate: float = 240.0
    min_response_rate: float = 240.0
    min_rate_window: float = 5.0
    server_header: bytes = b"thor"
    date_header: bool = True
    # HTTP/2 (docs/http2.md, "Serving"): over TLS, offer ALPN "h2" before "http/1.1" (set
    # on the TLS context given, which the server then owns); over cleartext, h2c with prior
    # knowledge (RFC 9113 §3.3) and by "Upgrade: h2c" (RFC 7540 §3.2).
    http2: bool = True
    h2c: bool = True
    h2c_upgrade: bool = True
    h2_config: Any = None  # a thor.http2.protocol.H2Config: limits and defences
    # The connection class per protocol, by ALPN name (RFC 7301): a TLS connection gets the
    # class of the protocol the client and the server agreed on; cleartext and a TLS
    # connection without ALPN get HTTP/1.1's. Copy the dict before changing it for one server.
    protocols: dict[str, ProtocolConnection] = {HTTP11: HttpServerConnection, H2: serve_h2}
    # A thor.tcp.ProxyProtocol: every connection starts with a PROXY header (v1 or v2) from
    # a trusted peer, whose client address the exchanges then report (before TLS, if any).
    proxy_protocol: Any = None

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
        self.loop = loop or thor.loop.default()
        self.scheme = "https" if tls_context is not None else "http"
        if tls_context is not None:
            from thor.tls import TlsServer

            # RFC 7301 §3.2: the server picks from the client's list by this preference.
            tls_context.set_alpn_protocols([H2, HTTP11] if self.http2 else [HTTP11])

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
        if self.proxy_protocol is not None:
            self.tcp_server.proxy_protocol = self.proxy_protocol
        self.host = self.tcp_server.host
        self.port = self.tcp_server.port
        # The address the server listens on (an attribute: exchanges read it per request).
        self.server_address: Any = self.tcp_server.address
        self.connections: set[ServedConnection] = set()  # one per connection, any protocol
        self.draining = False
        self.drain_idle_until = float("inf")  # set by graceful_shutdown
        self._stop_emitted = False
        self._drain_timer: thor.loop.ScheduledEvent | None = None
        self._date = b""
        self._date_second = 0
        self._server_line = (
            b"Server: %s\r\n" % as_bytes(self.server_header) if self.server_header else b""
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
                self._date = b"Date: %s\r\n" % http_date(now)
            out = self._date
        if not has_server:
            out += self._server_line
        return out

    def connection_class_for(self, tcp_conn: TcpConnection) -> ProtocolConnection:
        """The class that serves ``tcp_conn``: by the ALPN protocol TLS agreed on, else
        HTTP/1.1's (a name without a class falls back to it, logged)."""
        alpn = getattr(tcp_conn, "alpn_protocol", None) or HTTP11
        cls = self.protocols.get(alpn)
        if cls is None:
            log.warning("no connection class for ALPN %r; serving HTTP/1.1", alpn)
            cls = self.protocols[HTTP11]
        return cls

    def _on_connect(self, tcp_conn: TcpConnection) -> None:
        limit = self.max_connections
        if limit is not None and len(self.connections) >= limit:
            log.warning("connection limit (%d) reached; answering 503", limit)
            refusal = error.ServiceUnavailableError("too many connections").as_response(
                [(b"Retry-After", b"1")], b"503 Service Unavailable: too many connections\n"
            )
            tcp_conn.write(closing_response(refusal, self.extra_fields(False, False)))
            tcp_conn.close()
            return
        conn = self.connection_class_for(tcp_conn)(self, tcp_conn)
        self.connections.add(conn)
        if self.draining and isinstance(conn, HttpServerConnection):
            # Accepted from the backlog while draining: serve its first request.
            conn.expect(Wait.REQUEST, min(self.idle_timeout, 2.0))

    def switch_to_h2(
        self,
        old: ServedConnection,
        received: bytes,
        upgrade: tuple[bytes, list[tuple[bytes, bytes]]] | None = None,
    ) -> None:
        """Serve ``old``'s connection as HTTP/2 from now on: h2c with prior knowledge
        (``received`` starts with the preface) or after a 101 to ``Upgrade: h2c``.  The
        caller detaches ``old`` afterwards (so the server is never briefly empty)."""
        make: Any = self.protocols[H2]
        self.connections.add(make(self, old.tcp_conn, received=received, upgrade=upgrade))

    def connection_closed(self, conn: Any) -> None:
        """``conn`` is gone (or taken over by another protocol): forget it."""
        self.connections.discard(conn)
        if self.draining and not self.connections:
            self._stopped()

    def shutdown(self) -> None:
        """Stop accepting now; open connections are left alone.  Emits ``stop``."""
        # TlsServer.shutdown also aborts handshakes in progress (else their sockets leak).
        self.tcp_server.shutdown()
        self.emit("stop")

    def graceful_shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting (serving what waits in the backlog), finish in-flight exchanges
        (closing after each), answer the next request of each idle keep-alive connection
        with ``Connection: close`` (or close it when its keep-alive time ends, at the
        latest half ``timeout`` from now), then emit ``stop``.  Connections still open
        after ``timeout`` seconds are aborted."""
        if self.draining:
            return
        self.draining = True
        if timeout is not None:
            # Idle connections close gracefully (lingering) well before the abort below.
            self.drain_idle_until = self.loop.time() + timeout / 2
        self.tcp_server.stop_accepting(drain_backlog=True)
        for conn in list(self.connections):
            drain = getattr(conn, "drain", None)
            if drain is not None:
                drain()
            elif conn.is_idle and conn.served:
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
