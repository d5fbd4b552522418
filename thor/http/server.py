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

import logging
import ssl
from email.utils import formatdate
from time import time as wall_time
from typing import Any

import thor.loop
from thor.events import EventEmitter
from thor.http.server_connection import HttpServerConnection, Wait
from thor.http.server_exchange import ClientGoneError, HttpServerExchange, as_bytes
from thor.tcp import TcpConnection, TcpServer

__all__ = ["ClientGoneError", "HttpServer", "HttpServerConnection", "HttpServerExchange"]

log = logging.getLogger("thor.http.server")


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
        self.loop = loop or thor.loop.default()
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
        # TlsServer.shutdown also aborts handshakes in progress (else their sockets leak).
        self.tcp_server.shutdown()
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
