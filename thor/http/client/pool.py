"""The HTTP client's connection pool for one origin (scheme, host, port).

Theory of operation (the rules of Thor 0.17, kept):

- at most ``max_server_conn`` connections, *counting those being opened* (``live``);
- at most ``max_idle_conn`` of them idle: one released beyond that is closed;
- idle connections are reused last-in first-out (the most recently used one is the least
  likely to have been closed by the server's idle timeout) and closed after ``idle_timeout``;
- an exchange that finds no idle connection waits in a first-in first-out queue; a connection
  is opened for it if the cap allows, and any connection that becomes available (opened or
  released) goes to the head of the queue;
- a connection that fails to open fails the exchange at the head of the queue (which may
  retry, joining the queue again), then more connections are opened for the others.

Invariant: idle connections and waiting exchanges never coexist.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from thor.http import error
from thor.http.client.connection import PooledConnection
from thor.http.client.url import IDEMPOTENT_METHODS, Origin
from thor.http.protocol.client_connection import CLIENT_IDLE
from thor.tcp import TcpClient, TcpConnection

if TYPE_CHECKING:
    from thor.http.client.client import HttpClient
    from thor.http.client.exchange import HttpClientExchange

__all__ = ["Origin", "OriginPool", "connect_error"]


def connect_error(kind: str, code: int, message: str) -> error.HttpError:
    """The HttpError for a TcpClient/TlsClient ``connect_error`` event."""
    if kind == "gai":
        return error.DnsError(message)
    if kind == "access":
        return error.AccessError(message)
    if kind == "ssl":
        return error.ConnectError(f"TLS: {message}")
    return error.ConnectError(message)


class OriginPool:
    """Connections to one origin, and the exchanges waiting for one."""

    __slots__ = ("client", "connecting", "idle", "live", "origin", "waiting")

    def __init__(self, client: HttpClient, origin: Origin) -> None:
        self.client = client
        self.origin = origin
        self.idle: list[PooledConnection] = []  # a stack: the last released is reused first
        self.waiting: deque[HttpClientExchange] = deque()
        self.live = 0  # connections open or being opened
        self.connecting = 0

    def __repr__(self) -> str:
        return (
            f"<OriginPool {self.origin!r} live={self.live} idle={len(self.idle)} "
            f"waiting={len(self.waiting)}>"
        )

    # --- exchanges ----------------------------------------------------------------------------

    def acquire(self, exchange: HttpClientExchange) -> None:
        """Give ``exchange`` a connection now, or queue it until one is available."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            # Has the server closed it since the loop last looked? Checked for requests that
            # could not be retried, and for connections idle long enough for a server's
            # keep-alive timeout; a young connection carrying a GET is trusted (it would be
            # retried at once anyway) to save a system call on the hot path. (Its idle timer
            # stays: it fires, finds the connection busy, and leaves it to the exchange.)
            check = (
                exchange.method not in IDEMPOTENT_METHODS
                or self.client.loop.time() - conn.idle_since >= self.client.stale_check_after
            )
            if check and conn.is_stale():
                conn.abort()
                continue
            exchange.attach(conn)
            return
        # Dropping a stale connection may have emptied the pool and removed it from the client.
        self.client.adopt_pool(self)
        self.waiting.append(exchange)
        self._fill()

    def withdraw(self, exchange: HttpClientExchange) -> None:
        """``exchange`` no longer wants a connection (cancelled while queued)."""
        try:
            self.waiting.remove(exchange)
        except ValueError:
            pass

    def release(self, conn: PooledConnection, reusable: bool) -> None:
        """``conn`` finished its exchange; keep it (``reusable``) or close it."""
        conn.exchange = None
        if (
            not reusable
            or conn.retired
            or conn.proto.state is not CLIENT_IDLE  # RFC 9112 §9.3: both complete, nothing over
            or not self.client.idle_timeout
            # Enough kept already (there is no waiter then: idle ones and waiters never
            # coexist).
            or len(self.idle) >= self.client.max_idle_conn
        ):
            # Closed at once, not lingering: the response is read, and whatever of the request
            # is still unsent is not wanted any more.
            conn.abort()
            return
        conn.reused = True
        conn.tcp.pause(False)  # an idle connection must read, to notice the server's FIN
        self._dispatch(conn)

    # --- connections --------------------------------------------------------------------------

    def forget(self, conn: PooledConnection) -> None:
        """``conn`` retired: it no longer counts; maybe open another for the waiting."""
        self.live -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        self._fill()
        self._maybe_empty()

    def close_idle(self) -> None:
        """Close every idle connection."""
        for conn in list(self.idle):
            conn.abort()

    def _dispatch(self, conn: PooledConnection) -> None:
        if self.waiting:
            self.waiting.popleft().attach(conn)
            return
        client = self.client
        conn.idle_since = now = client.loop.time()
        conn.wake_by(now + (client.idle_timeout or 0.0))
        self.idle.append(conn)

    def _fill(self) -> None:
        cap = self.client.max_server_conn
        while len(self.waiting) > self.connecting and self.live < cap:
            self._connect()

    def _connect(self) -> None:
        client = self.client
        self.live += 1
        self.connecting += 1
        scheme, host, port = self.origin
        connector: TcpClient
        if scheme == "https":
            import thor.tls  # imported on first use: plain-HTTP users never load ssl

            connector = thor.tls.TlsClient(
                client.loop,
                client.tls_context,
                server_hostname=host,
                handshake_timeout=client.connect_timeout or 10.0,
                # RFC 9113 §3.2: HTTP/2 over TLS is chosen by ALPN, if the client offers it.
                alpn_protocols=["h2", "http/1.1"] if client.http2 else None,
            )
        else:
            connector = TcpClient(client.loop)
        if client.check_ip is not None:
            connector.check_ip = client.check_ip
        connector.on("connect", self._on_connect)
        connector.on("connect_error", self._on_connect_error)
        connector.connect(host, port, client.connect_timeout or None)

    def _on_connect(self, tcp: TcpConnection) -> None:
        self.connecting -= 1
        read_size = self.client.read_size
        if read_size:  # once per connection: each response read in chunks of this size
            tcp.read_bufsize = read_size
        if getattr(tcp, "alpn_protocol", None) == "h2":
            self._to_http2(tcp)
            return
        self._dispatch(PooledConnection(self, tcp))

    def _to_http2(self, tcp: TcpConnection) -> None:
        """The server chose HTTP/2: an HTTP/2 pool takes this origin's place in the client,
        with this connection and the exchanges waiting here."""
        from thor.http2.client import H2OriginPool

        self.live -= 1
        pool = self.client.pools.get(self.origin)
        if not isinstance(pool, H2OriginPool):
            pool = H2OriginPool(self.client, self.origin)
            self.client.adopt_pool(pool)
        waiting, self.waiting = self.waiting, deque()
        pool.adopt(tcp, waiting)
        if self.live == 0 and self.client.pools.get(self.origin) is self:
            self.client.drop_pool(self)

    def _on_connect_error(self, kind: str, code: int, message: str) -> None:
        self.connecting -= 1
        self.live -= 1
        if self.waiting:
            self.waiting.popleft().connect_failed(connect_error(kind, code, message), kind)
        self._fill()
        self._maybe_empty()

    def _maybe_empty(self) -> None:
        if self.live == 0 and not self.waiting:
            self.client.drop_pool(self)
