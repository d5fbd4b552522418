"""HttpClient: Thor 0.17's HTTP/1.1 client, with a connection pool per origin.

Usage::

    client = thor.HttpClient()
    ex = client.exchange()
    ex.on("response_start", lambda status, phrase, headers: ...)   # status: b"200"
    ex.on("response_body", lambda chunk: ...)
    ex.on("response_done", lambda trailers: ...)
    ex.on("error", lambda err: ...)
    ex.request_start(b"GET", b"http://example.com/", [])
    ex.request_done([])

Settings are class attributes, so a subclass can set them (as Thor 0.17's documentation
promised, and unlike its code), and keyword arguments override them for one client. The
second positional argument is ``idle_timeout``, as in the 0.17 documentation.

The pieces (``thor.http.client``): ``url`` (URL and header preparation), ``exchange`` (one
request), ``pool`` (connections per origin), ``connection`` (one connection). The client is
the one owner of the pools: the others read ``pools`` and change it through its methods.
See docs/http-client.md.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import thor.loop
from thor.http.client.exchange import HttpClientExchange
from thor.http.client.pool import OriginPool
from thor.http.client.url import Origin

if TYPE_CHECKING:
    import ssl

    from thor.http2.client import H2OriginPool
    from thor.http2.protocol import H2Config

__all__ = ["HttpClient", "HttpClientExchange"]


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET


class HttpClient:
    """An HTTP/1.1 (and HTTP/2) client; ``exchange()`` makes a request."""

    # Thor 0.17 names and defaults.
    idle_timeout: float | None = 60.0  # seconds an idle connection is kept; 0/None: no reuse
    connect_timeout: float | None = 3.0  # seconds to connect (and shake hands, for TLS)
    read_timeout: float | None = None  # seconds of server silence; None: connect_timeout
    max_server_conn: int = 6  # connections per origin, counting those being opened
    retry_limit: int = 2  # retries after connection failures (see docs)
    retry_delay: float = 0.5  # seconds before a retry
    retry_body_limit: int = 1024 * 1024  # request body bytes kept for a replay
    check_ip: Callable[[str], bool] | None = None  # veto addresses (AccessError)
    # Additions.
    tls_context: ssl.SSLContext | None = None  # None: verify with the system's CAs
    expect_continue_timeout: float = 1.0  # RFC 9110 §10.1.1: how long to wait for 100
    preserve_host: bool = False  # default of HttpClientExchange.preserve_host
    # Before reuse, an idle connection is checked (one zero-timeout poll) in case the server
    # closed it since the loop last looked: always for non-idempotent requests, and for the
    # others once it has been idle this long (a GET on a dead connection is retried at once).
    stale_check_after: float = 1.0
    # HTTP/2 (thor.http2.client): h2c:// URLs always use it (prior knowledge); https://
    # origins are offered it by ALPN when ``http2`` is set, and use it if the server agrees.
    http2: bool = False
    h2_config: H2Config | None = None  # the HTTP/2 limits and windows; None: the defaults
    # Bytes asked of the socket per read (None: TcpConnection.read_bufsize, 120 KiB).  A
    # relay that passes responses on sets it small, so that what one read brings in on top
    # of a paused client's buffer stays small (thor_gateway's proxy buffer_size).
    read_size: int | None = None
    # Idle connections kept per origin; one released beyond it is closed.  A relay leaves
    # max_server_conn unbounded (busy connections follow demand, as nginx's do) and bounds
    # only these, so that slow clients holding busy ones never make others queue.
    max_idle_conn: int = sys.maxsize

    exchange_class: type[HttpClientExchange] = HttpClientExchange

    def __init__(
        self,
        loop: thor.loop.Loop | None = None,
        idle_timeout: float | _Unset | None = UNSET,
        *,
        connect_timeout: float | _Unset | None = UNSET,
        read_timeout: float | _Unset | None = UNSET,
        max_server_conn: int | _Unset = UNSET,
        retry_limit: int | _Unset = UNSET,
        retry_delay: float | _Unset = UNSET,
        retry_body_limit: int | _Unset = UNSET,
        check_ip: Callable[[str], bool] | _Unset | None = UNSET,
        tls_context: ssl.SSLContext | _Unset | None = UNSET,
        expect_continue_timeout: float | _Unset = UNSET,
        preserve_host: bool | _Unset = UNSET,
        stale_check_after: float | _Unset = UNSET,
        http2: bool | _Unset = UNSET,
        h2_config: H2Config | _Unset | None = UNSET,
        read_size: int | _Unset | None = UNSET,
        max_idle_conn: int | _Unset = UNSET,
    ) -> None:
        self.loop = loop or thor.loop.default()
        given: dict[str, Any] = {
            "idle_timeout": idle_timeout,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_server_conn": max_server_conn,
            "retry_limit": retry_limit,
            "retry_delay": retry_delay,
            "retry_body_limit": retry_body_limit,
            "check_ip": check_ip,
            "tls_context": tls_context,
            "expect_continue_timeout": expect_continue_timeout,
            "preserve_host": preserve_host,
            "stale_check_after": stale_check_after,
            "http2": http2,
            "h2_config": h2_config,
            "read_size": read_size,
            "max_idle_conn": max_idle_conn,
        }
        for name, value in given.items():
            if value is not UNSET:
                setattr(self, name, value)
        if self.max_server_conn < 1:
            raise ValueError("max_server_conn must be at least 1")
        # Read-only outside this class; an origin spoken to in HTTP/2 has an H2OriginPool.
        self.pools: dict[Origin, OriginPool | H2OriginPool] = {}

    def exchange(self) -> HttpClientExchange:
        """A new exchange; attach listeners, then call ``request_start``."""
        return self.exchange_class(self)

    @property
    def effective_read_timeout(self) -> float | None:
        """``read_timeout``, or ``connect_timeout`` when it is None (Thor 0.17)."""
        return self.read_timeout if self.read_timeout is not None else self.connect_timeout

    @property
    def conn_counts(self) -> dict[Origin, int]:
        """Connections open or being opened, per origin (Thor 0.17)."""
        return {origin: pool.live for origin, pool in self.pools.items() if pool.live}

    def idle_counts(self) -> dict[Origin, int]:
        """Idle connections per origin."""
        return {origin: len(pool.idle) for origin, pool in self.pools.items() if pool.idle}

    def close(self) -> None:
        """Close every idle connection (exchanges in progress go on)."""
        for pool in list(self.pools.values()):
            pool.close_idle()

    # --- the pools' owner: what exchanges and pools call --------------------------------------

    def pool_for(self, origin: Origin) -> OriginPool | H2OriginPool:
        """The pool of ``origin``, made on first use."""
        pool = self.pools.get(origin)
        if pool is None:
            if origin[0] == "h2c":
                from thor.http2.client import H2OriginPool

                pool = self.pools[origin] = H2OriginPool(self, origin)
            else:
                pool = self.pools[origin] = OriginPool(self, origin)
        return pool

    def adopt_pool(self, pool: OriginPool | H2OriginPool) -> None:
        """``pool`` has work again (it may have been dropped while it had none), or takes
        the place of another (an HTTP/2 pool, once ALPN chose ``h2``)."""
        self.pools[pool.origin] = pool

    def drop_pool(self, pool: OriginPool | H2OriginPool) -> None:
        """``pool`` has no connection and no waiting exchange: forget it."""
        if self.pools.get(pool.origin) is pool:
            del self.pools[pool.origin]
