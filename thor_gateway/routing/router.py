"""Which mounted handler serves a request, and what it is told about the path.

Theory of operation.  The router listens to the server's ``exchange`` event
(the request head is parsed then; the exchange's ``request_start`` follows) and:

1. answers the health and readiness paths itself (before any mount: a probe
   must not depend on an app);
2. refuses CONNECT with 405 unless a route declares ``accepts_connect`` (only
   a proxy may tunnel; RFC 9110 §9.3.6, Appendix B42);
3. refuses with 503 beyond ``--limit-concurrency`` requests in progress;
4. percent-decodes the path and picks the mount with the **longest prefix
   that matches at a segment boundary**: ``/api`` matches ``/api`` and
   ``/api/x`` but not ``/apix``; ``/`` matches everything.  No match: 404;
5. builds the :class:`~thor_gateway.routing.request.Request`, with ``script_name`` =
   ``--root-path`` + the prefix and ``path_info`` = the rest, and the client
   and scheme a trusted proxy reported (:mod:`thor_gateway.routing.forwarded`);
6. calls ``handler.handle(exchange, request)``.

The exchange's ``done`` event feeds the metrics and the access log.

Matching on the decoded path is what WSGI's ``PATH_INFO`` implies; a prefix
never matches inside a segment, unlike a raw ``startswith`` (hypercorn's
dispatcher, house-style §8).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from thor.http.protocol.abnf import PERCENT
from thor_gateway.operations.access_log import AccessLog, AccessRecord
from thor_gateway.operations.metrics import Metrics
from thor_gateway.operations.status import RouteStats
from thor_gateway.routing.errors import (
    ConcurrencyLimitError,
    ConnectNotAllowedError,
    DrainingError,
    RouteNotFoundError,
    respond,
    when_complete,
)
from thor_gateway.routing.forwarded import ProxyTrust, carries_proxy_fields
from thor_gateway.routing.request import (
    Request,
    address_of,
    split_target,
    target_authority,
    with_host,
)

__all__ = ["Route", "Router", "split_target"]

log = logging.getLogger("thor_gateway.routing")
RawHeaders = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Route:
    """A handler under a prefix (decoded bytes without a trailing slash; ``b""`` = root)."""

    prefix: bytes
    handler: Any
    # The status page's counters of this route, set when the page is served (--metrics-bind;
    # operations/status_page.py): without it a request does not pay for them.
    stats: RouteStats | None = field(default=None, compare=False, repr=False)

    @property
    def accepts_connect(self) -> bool:
        return bool(getattr(self.handler, "accepts_connect", False))


_UNKNOWN = object()


class Router:
    """Dispatches exchanges to routes; one per worker, shared by every listener."""

    def __init__(
        self,
        routes: list[Route],
        *,
        root_path: bytes = b"",
        trust: ProxyTrust | None = None,
        health_path: bytes = b"/healthz",
        ready_path: bytes = b"/readyz",
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
        limit_concurrency: int = 0,
        max_requests: int = 0,
        on_max_requests: Callable[[], None] | None = None,
    ) -> None:
        # Longest prefix first, so the first match is the best one.
        self.routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
        self.root_path = root_path
        self.trust = trust or ProxyTrust(["127.0.0.1", "::1"])
        self.health_path = health_path
        self.ready_path = ready_path
        self.metrics = metrics or Metrics()
        self.access_log = access_log
        self.limit_concurrency = limit_concurrency
        self.max_requests = max_requests
        self.on_max_requests = on_max_requests
        self.served = 0
        self.draining = False
        self._server_addresses: dict[Any, object] = {}

    def match(self, path: bytes) -> Route | None:
        """The route for a decoded path (longest prefix at a segment boundary)."""
        for route in self.routes:
            prefix = route.prefix
            if not prefix or path == prefix or path.startswith(prefix + b"/"):
                return route
        return None

    def on_exchange(self, exchange: Any) -> None:
        """``HttpServer``'s ``exchange`` listener: the request head is known, so route now.

        The exchange's ``request_start`` follows this event, so a native app the
        request is routed to hears it as if it were the server's only listener.
        """
        self.dispatch(exchange, exchange.method, exchange.uri, exchange.req_hdrs)

    def dispatch(self, exchange: Any, method: bytes, target: bytes, headers: RawHeaders) -> None:
        """Route one request (called when its exchange arrives)."""
        metrics = self.metrics
        busy = metrics.in_flight
        metrics.started(exchange.req_version)
        # [client, route stats]: filled in once the client and the route are known.
        known: list[Any] = [None, None]
        # "done" comes once per exchange: a plain listener is cheaper than once().
        exchange.on("done", lambda completed: self._finished(exchange, completed, known))
        raw_path, query = split_target(target)
        if target[:1] != b"/" and method != b"CONNECT":
            authority = target_authority(target)
            if authority is not None:
                # RFC 9112 §3.2.2: with an absolute-form target, the server MUST ignore the
                # Host field and use the target's authority (apps and upstreams see that).
                headers = with_host(headers, authority)
        if self._probe(exchange, raw_path):
            return
        found = self._route(exchange, method, raw_path)
        if found is None:
            return
        route, path = found
        known[1] = route.stats
        if self.limit_concurrency and busy >= self.limit_concurrency:
            respond(exchange, ConcurrencyLimitError(), extra=[(b"Retry-After", b"1")])
            return
        peer = address_of(exchange.client_address)
        scheme = exchange.scheme
        if carries_proxy_fields(headers):
            info = self.trust.resolve(peer, scheme, headers)
            peer, scheme = info.client, info.scheme
            if info.host is not None:
                headers = with_host(headers, info.host)
        known[0] = peer
        request = Request(
            method=method,
            target=target,
            raw_path=raw_path,
            query=query,
            script_name=self.root_path + route.prefix,
            path_info=path[len(route.prefix) :],
            headers=headers,
            http_version=exchange.req_version,
            scheme=scheme,
            client=peer,
            server=self._server_address(exchange.server_address),
        )
        route.handler.handle(exchange, request)

    def _server_address(self, address: Any) -> tuple[str, int] | None:
        """A listener's address as (host, port) (converted once per listener, then cached)."""
        known = self._server_addresses.get(address, _UNKNOWN)
        if known is _UNKNOWN:
            known = self._server_addresses[address] = address_of(address)
        return known  # type: ignore[return-value]

    def _probe(self, exchange: Any, raw_path: bytes) -> bool:
        """Answer the health and readiness paths; True when answered."""
        if raw_path == self.health_path:
            self._plain(exchange, b"ok\n")
            return True
        if raw_path == self.ready_path:
            if self.draining:
                respond(exchange, DrainingError())
            else:
                self._plain(exchange, b"ready\n")
            return True
        return False

    def _route(self, exchange: Any, method: bytes, raw_path: bytes) -> tuple[Route, bytes] | None:
        """The route and the decoded path it matched; None after answering 404 / 405."""
        if method == b"CONNECT":
            # The target is host:port, not a path: only a route that tunnels takes it,
            # with the whole target as its path.
            tunnel = next((r for r in self.routes if r.accepts_connect), None)
            if tunnel is None:
                respond(exchange, ConnectNotAllowedError(), extra=[(b"Allow", b"GET, HEAD, POST")])
                return None
            return tunnel, tunnel.prefix + raw_path
        # Most paths have nothing to decode; unquote_to_bytes is pure Python. (The int
        # needle: see thor.http.protocol.abnf.PERCENT.)
        path = unquote_to_bytes(raw_path) if PERCENT in raw_path else raw_path
        route = self.match(path)
        if route is None:
            respond(exchange, RouteNotFoundError())
            return None
        return route, path

    def _plain(self, exchange: Any, body: bytes) -> None:
        when_complete(exchange, lambda: self._send_plain(exchange, body))

    def _send_plain(self, exchange: Any, body: bytes) -> None:
        exchange.response_start(
            200,
            "OK",
            [
                (b"Content-Type", b"text/plain; charset=utf-8"),
                (b"Content-Length", str(len(body)).encode()),
                (b"Cache-Control", b"no-store"),
            ],
        )
        exchange.response_body(body)
        exchange.response_done([])

    def _finished(self, exchange: Any, completed: bool, known: list[Any]) -> None:
        duration = max(0.0, exchange.loop.time() - exchange.start_time)
        status = exchange.res_status
        self.metrics.finished(
            status, completed, duration, exchange.res_bytes, exchange.req_body_bytes, known[1]
        )
        if self.access_log is not None:
            self._log(exchange, completed, duration, known[0])
        self.served += 1
        if self.max_requests and self.served == self.max_requests and self.on_max_requests:
            self.on_max_requests()

    def _log(
        self, exchange: Any, completed: bool, duration: float, client: tuple[str, int] | None
    ) -> None:
        client = client or address_of(exchange.client_address)
        record = AccessRecord(
            remote=client[0] if client else "unix",
            method=exchange.method,
            target=exchange.uri,
            version=exchange.req_version,
            status=exchange.res_status if completed else 0,
            body_bytes=exchange.res_bytes,
            duration=duration,
            when=time.time(),
            request_headers=exchange.req_hdrs,
            response_headers=exchange.res_hdrs,
        )
        try:
            assert self.access_log is not None
            self.access_log.write(record)
        except (OSError, ValueError) as error:  # a full disk must not stop the serving
            log.error("access log write failed: %s", error)
