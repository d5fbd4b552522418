"""The reverse proxy: a mountable handler that forwards requests to a set of upstreams.

Usage (Python)::

    from thor_gateway.proxy.handler import ProxyHandler
    api = ProxyHandler(["http://10.0.0.5:8080", "http://10.0.0.6:8080"],
                       balancer="least_connections", upstream_timeout=30)
    api.handle(exchange, request)   # from a router, or from your own handler

and from the command line ``thor-gateway --proxy /api=http://h1:8080,http://h2:8080``, or a
``[[proxy]]`` table whose keys are the keyword arguments of :class:`ProxyHandler`.

Theory of operation: one :class:`ProxyHandler` per route owns an :class:`UpstreamSet`
(members re-resolved through DNS), a balancer, a retry budget, optional active health
checks, and its own :class:`thor.HttpClient` (so connection pools, timeouts and limits are
per route).  ``handle`` answers TRACE/OPTIONS with ``Max-Forwards: 0`` itself (RFC 9110
§7.6.2), picks a member, and hands the rest to a
:class:`~thor_gateway.proxy_exchange.ProxiedExchange`, which relays both ways with
backpressure and turns failures into 502/503/504 or an aborted connection.
A request that asks to switch protocols (WebSocket) is offered upstream with its Upgrade;
after a 101 both connections go to a :class:`~thor_gateway.proxy.tunnel.Tunnel` (kept in
``tunnels`` until it ends; ``shutdown`` closes them).  CONNECT is refused (405).

An HTTP cache in front of the route (``thor_gateway.cache``) hands its misses to
``cache_fetch``: the same relay, its response going straight into the cache's fetch;
``cache_pass``: a GET the cache passes by, relayed as ``handle`` does with its fields added
and the response head's fields given to the cache on their way to the client.

Code that decides per request passes ``pick=fn(request, members) -> Upstream | None``,
or keeps several handlers and calls the right one's ``handle``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import thor.loop
from thor.http.exchange import Exchange
from thor_gateway.aggregation.transform import Gzip, Transform
from thor_gateway.operations.metrics import UpstreamSamples, upstream_labels
from thor_gateway.proxy import forwarding
from thor_gateway.proxy.balancer import Balancer, key_function, make_balancer
from thor_gateway.proxy.health_checks import ActiveHealthChecker, HealthTracker, PassiveEjection
from thor_gateway.proxy.relay import HeadHook, ProxiedExchange
from thor_gateway.proxy.retries import IDEMPOTENT, RetryBudget
from thor_gateway.proxy.tunnel import Tunnel
from thor_gateway.proxy.upstreams import Resolver, Target, Upstream, UpstreamSet, parse_target
from thor_gateway.routing.errors import ConnectNotAllowedError, respond
from thor_gateway.routing.request import Done, Request

__all__ = [
    "ProxyHandler",
    "ProxySettings",
    "check_route",
    "handler_from_config",
    "request_for",
    "settings_from_flags",
]

_SAMPLE_FIELDS = (
    "requests",
    "failures",
    "in_flight",
    "in_service",
    "tunnels",
    "tunnel_sent",
    "tunnel_received",
    "ejections",
    "connections_http1",
    "connections_http2",
    "streams_http2",
)


def _member_state(member: Upstream, now: float) -> str:
    """ "up", "down" (active checks), "ejected" or "probation" (passive ejection)."""
    if not member.health.up:
        return "down"
    if not member.ejection.admits(now):
        return "ejected"
    return member.ejection.state.value.replace("in service", "up")


Pick = Callable[[Request, Sequence[Upstream]], "Upstream | None"]
Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class ProxySettings:
    """Every setting of a proxy route; the keyword arguments of :class:`ProxyHandler`."""

    preserve_host: bool = False  # pass the client's Host on (else the upstream's authority)
    strip_prefix: bool = True  # forward /prefix/x as /x (then the upstream URL's path)
    connect_timeout: float = 3.0  # seconds to connect to an upstream
    upstream_timeout: float = 30.0  # seconds without progress from the upstream -> 504
    balancer: str = "round_robin"  # round_robin | least_connections | weighted | consistent_hash
    hash_key: str | None = None  # consistent_hash key: client | header:NAME | cookie:NAME
    retries: int = 1  # extra attempts on another member (see proxy_exchange._retryable)
    retry_budget: float = 0.2  # retries at most this share of requests (plus 3/s)
    max_connections: int | None = None  # requests in flight per member (default for all)
    max_idle_connections: int = 512  # idle connections kept per member
    idle_timeout: float = 60.0  # seconds an idle upstream connection is kept
    tunnel_idle_timeout: float = (
        300.0  # seconds without a byte either way closes a tunnel (0: never)
    )
    health_check_path: str | None = None  # turns active health checks on
    health_check_interval: float = 5.0
    health_check_timeout: float = 2.0
    health_check_rise: int = 2
    health_check_fall: int = 3
    max_fails: int = 3  # consecutive failures that eject a member (0: never)
    eject_time: float = 10.0  # seconds out, doubled on relapse
    fail_statuses: frozenset[int] = frozenset({502, 503, 504})  # upstream answers that count
    resolve_interval: float = 30.0  # seconds between DNS re-resolutions (0: never)
    forwarded: bool = True  # add Forwarded (RFC 7239)
    x_forwarded: bool = True  # add X-Forwarded-For/-Proto/-Host
    via: bytes = b"thor"  # the pseudonym in Via
    gzip: bool = False  # compress responses for clients that accept gzip
    tls_ca_file: str | None = None  # https upstreams: verify with these CAs (else the system's)
    tls_verify: bool = True  # False: no certificate or name check (tests only)
    tls_cert_file: str | None = None  # a client certificate for mutual TLS
    tls_key_file: str | None = None
    transforms: Sequence[Transform] = field(default_factory=tuple)
    http2: bool = False  # https upstreams: offer HTTP/2 by ALPN (h2c:// ones always use it)
    # Response bytes held per proxied response for a client that reads slowly (nginx's
    # proxy_buffers): half as the client's write high-water mark, half as the upstream read.
    buffer_size: int = 48 * 1024
    # Request body bytes received before the request takes an upstream connection (HAProxy's
    # http-buffer-request): the whole body up to this size, the first this-many of a larger
    # one; 0 streams the body upstream as it comes (see relay.ProxiedExchange.start).
    request_buffer_size: int = 64 * 1024

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _coerce(name: str, value: Any) -> Any:
    """TOML gives lists and strings where the settings want sets and bytes."""
    if name == "fail_statuses":
        return frozenset(int(v) for v in value)
    if name == "via" and isinstance(value, str):
        return value.encode("ascii")
    return value


def _settings(settings: Mapping[str, Any]) -> ProxySettings:
    # TOML keys may be spelled with dashes, like the command line's flags.
    settings = {k.replace("-", "_"): v for k, v in settings.items()}
    unknown = set(settings) - ProxySettings.names()
    if unknown:
        raise TypeError(f"unknown proxy settings: {', '.join(sorted(unknown))}")
    return ProxySettings(**{k: _coerce(k, v) for k, v in settings.items()})


def check_route(
    upstreams: Iterable[str | Mapping[str, Any] | Target], settings: Mapping[str, Any]
) -> None:
    """Raise what ``ProxyHandler(upstreams, **settings)`` would, without building it.

    (``--check-config``, and the master before it forks: an upstream table with an unknown
    key or a bad balancer name fails there, not in every worker.)
    """
    for upstream in upstreams:
        if not isinstance(upstream, Target):
            parse_target(upstream)
    s = _settings(settings)
    make_balancer(s.balancer)
    if s.hash_key:
        key_function(s.hash_key)


class ProxyHandler:
    """A mountable reverse proxy (the Handler interface of ``thor_gateway.routing.request``)."""

    def __init__(
        self,
        upstreams: Iterable[str | Mapping[str, Any] | Target] | UpstreamSet,
        *,
        loop: thor.loop.Loop | None = None,
        client: Any = None,
        resolver: Resolver | None = None,
        pick: Pick | None = None,
        **settings: Any,
    ) -> None:
        self.settings = s = _settings(settings)
        self.loop = loop or thor.loop.default()
        if isinstance(upstreams, UpstreamSet):
            self.upstreams = upstreams
        else:
            self.upstreams = UpstreamSet(
                upstreams,
                loop=self.loop,
                resolve_interval=s.resolve_interval,
                resolver=resolver,
                member_factory=self._member,
            )
        self.balancer: Balancer = make_balancer(s.balancer)
        self.key = key_function(s.hash_key) if s.hash_key else None
        self.pick = pick
        self.tunnels: set[Tunnel] = set()  # switched connections open (WebSocket...)
        self.retry_budget = RetryBudget(ratio=s.retry_budget)
        self.retry_methods = IDEMPOTENT
        self.transforms: list[Transform] = list(s.transforms)
        if s.gzip:
            self.transforms.append(Gzip())
        if client is None:
            from thor.http.client import HttpClient

            tls_context = None
            if s.tls_ca_file or not s.tls_verify or s.tls_cert_file:
                from thor.tls import client_context

                tls_context = client_context(
                    cafile=s.tls_ca_file,
                    certfile=s.tls_cert_file,
                    keyfile=s.tls_key_file,
                    verify=s.tls_verify,
                )
            client = HttpClient(
                loop=self.loop,
                tls_context=tls_context,
                idle_timeout=s.idle_timeout,
                connect_timeout=s.connect_timeout,
                read_timeout=s.upstream_timeout,
                # Without max_connections, busy connections follow demand (as nginx's do):
                # under a cap, 512 slow readers of large responses held every connection
                # and everyone else queued behind them (issue 16). Idle ones are bounded.
                max_server_conn=s.max_connections or sys.maxsize,
                max_idle_conn=s.max_idle_connections,
                retry_limit=0,  # retries go to another member, decided here
                http2=s.http2,
                read_size=max(s.buffer_size // 2, 4096),  # = write_limit
            )
        self.client = client
        # Upstreams that may speak HTTP/2 get the client's "TE: trailers" (gRPC needs it:
        # RFC 9113 §8.2.2 lets it through, and the proxy relays trailers both ways).
        # Half of a response's buffer is the client's write mark, half one upstream read.
        self.write_limit = max(s.buffer_size // 2, 4096)
        self.speaks_h2 = s.http2 or any(t.scheme == "h2c" for t in self.upstreams.targets)
        self.health: ActiveHealthChecker | None = None
        if s.health_check_path:
            self.health = ActiveHealthChecker(
                self.upstreams,
                client,
                loop=self.loop,
                path=s.health_check_path,
                interval=s.health_check_interval,
                timeout=s.health_check_timeout,
            )

    def _member(self, target: Target, address: str) -> Upstream:
        s = self.settings
        if s.max_connections is not None and target.max_connections is None:
            target = Target(
                target.scheme,
                target.host,
                target.port,
                target.base_path,
                target.weight,
                s.max_connections,
            )
        return Upstream(
            target,
            address,
            health=HealthTracker(rise=s.health_check_rise, fall=s.health_check_fall),
            ejection=PassiveEjection(max_fails=s.max_fails, eject_time=s.eject_time),
        )

    # --- the Handler interface -----------------------------------------------------------

    def handle(self, exchange: Exchange, request: Request) -> None:
        """Forward ``request`` (its ``request_start`` was consumed by the router)."""
        if request.method == b"CONNECT":
            # RFC 9110 §9.3.6: a tunnel to any host:port is a forward proxy's job, not a
            # reverse proxy route's (the router says the same before it gets here).
            respond(exchange, ConnectNotAllowedError(), extra=[(b"Allow", b"GET, HEAD, POST")])
            return
        hops = forwarding.max_forwards(request.method, request.headers)
        if hops == 0:
            self._answer_locally(exchange, request)
            return
        ProxiedExchange(self, exchange, request).start()

    def cache_fetch(
        self, sink: Any, request: Request, headers: Headers, extra: Headers, exchange: Exchange
    ) -> ProxiedExchange:
        """Forward a GET of ``request``'s target with ``headers`` and no body, for an HTTP
        cache (``thor_gateway.cache``), ``extra`` fields appended as they are (the cache's
        own: Surrogate-Capability, validators): the response goes to ``sink`` (its
        ``response_start``, ``response_body``, ``response_done``, ``abort``, as to an
        exchange; the field list ``response_start`` gets is the sink's own, to keep or
        change), the forwarding fields name the client of ``exchange``.  Nothing listens
        to ``exchange``: the caller passes on its pauses (``client_paused``) and, when nobody
        wants the response any more, ``cancel``s the relay this returns."""
        relay = ProxiedExchange(self, exchange, request, sink, headers, extra)
        relay.start()
        return relay

    def cache_pass(
        self,
        exchange: Exchange,
        request: Request,
        extra: Headers,
        relayed: HeadHook,
    ) -> None:
        """Forward a GET that an HTTP cache passes by (``thor_gateway.cache.passing``) on
        ``exchange`` as ``handle`` does, ``extra`` fields appended as they are (the cache's
        own Surrogate-Capability): no copy of the request is made to add them.  The
        response head's fields go to the client as ``relayed(status, fields)`` answers (the
        cache adds its Cache-Status); the exchange is the client's own, not one wrapped
        around it."""
        relay = ProxiedExchange(self, exchange, request, extra=extra)
        relay.relayed = relayed
        relay.start()

    def upstream_samples(self, route: str) -> UpstreamSamples:
        """This proxy's members as ``/metrics`` shows them, labelled with ``route``.

        Members that re-resolution removed stay (not in service), and one that comes back
        goes on from its counts: the counters of a series never go backwards.
        """
        now = self.loop.time()
        samples: UpstreamSamples = {}
        current = self.upstreams.members
        for member in [*self.upstreams.departed.values(), *current]:
            values = samples.setdefault(
                upstream_labels(route, member.origin),
                dict.fromkeys(_SAMPLE_FIELDS, 0),
            )
            values["requests"] += member.requests
            values["failures"] += member.failures
            values["in_flight"] += member.active
            values["tunnels"] += member.tunnels
            values["tunnel_sent"] += member.tunnel_sent
            values["tunnel_received"] += member.tunnel_received
            values["ejections"] += member.ejection.ejections
            if member in current:
                values["in_service"] |= member.in_service(now)
                self._connection_samples(member, values)
        return samples

    def upstream_status(self) -> list[dict[str, Any]]:
        """The current members as the status page shows them (operations/status.py)."""
        now = self.loop.time()
        return [
            {
                "upstream": member.origin,
                "state": _member_state(member, now),
                "in_flight": member.active,
                "requests": member.requests,
                "failures": member.failures,
                "ejections": member.ejection.ejections,
            }
            for member in self.upstreams.members
        ]

    def _connection_samples(self, member: Upstream, values: dict[str, int]) -> None:
        """The client's connections to ``member``, by protocol, and its HTTP/2 streams."""
        target = member.target
        pools = getattr(self.client, "pools", None)
        pool = pools.get((target.scheme, member.address.lower(), target.port)) if pools else None
        if pool is None:
            return
        streams = getattr(pool, "streams", None)
        if streams is None:
            values["connections_http1"] += pool.live
        else:
            values["connections_http2"] += pool.live
            values["streams_http2"] += streams

    def startup(self, done: Done) -> None:
        """Resolve upstream names, start health checks, then ``done(None)``."""

        def resolved() -> None:
            if self.health is not None:
                self.health.start()
            done(None)

        self.upstreams.start(resolved)

    def shutdown(self, done: Done) -> None:
        """Stop re-resolving and probing; close idle upstream connections and open tunnels."""
        for tunnel in list(self.tunnels):
            tunnel.close("shutting down")
        self.upstreams.stop()
        if self.health is not None:
            self.health.stop()
        self.client.close()
        done(None)

    def _answer_locally(self, exchange: Exchange, request: Request) -> None:
        """RFC 9110 §7.6.2: Max-Forwards 0 makes this gateway the final recipient."""
        if request.method == b"TRACE":
            body = forwarding.trace_body(
                request.method, request.target, request.http_version, request.headers
            )
            headers = [(b"Content-Type", b"message/http")]
        else:  # OPTIONS
            body = b""
            headers = [(b"Allow", b"GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH")]
        headers.append((b"Content-Length", b"%d" % len(body)))
        exchange.response_start(200, b"OK", headers)
        exchange.response_body(body)
        exchange.response_done([])


def request_for(exchange: Exchange, method: bytes, uri: bytes, headers: Any) -> Request:
    """A :class:`Request` for a native app's ``request_start``, to call ``handle`` with."""
    from thor_gateway.routing.request import request_at_mount

    return request_at_mount(exchange, method, uri, headers)


# --- CLI and config helpers (the gateway's cli.py / config.py call these) -----------------


def settings_from_flags(
    upstream_connect_timeout: float | None = None, upstream_timeout: float | None = None
) -> dict[str, Any]:
    """Route defaults from ``--upstream-connect-timeout`` / ``--upstream-timeout``."""
    out: dict[str, Any] = {}
    if upstream_connect_timeout is not None:
        out["connect_timeout"] = float(upstream_connect_timeout)
    if upstream_timeout is not None:
        out["upstream_timeout"] = float(upstream_timeout)
    return out


def handler_from_config(
    table: Mapping[str, Any],
    *,
    loop: thor.loop.Loop | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ProxyHandler:
    """A handler from a ``[[proxy]]`` table (``prefix`` is the router's and ignored here).

    ``upstreams`` (or ``upstream``) is a URL, a list of URLs, or a list of tables
    ``{url = ..., weight = ..., max_connections = ...}``; every other key is a
    :class:`ProxySettings` name, overriding ``defaults``.
    """
    options = {k.replace("-", "_"): v for k, v in table.items()}
    upstreams = options.pop("upstreams", None) or options.pop("upstream", None)
    options.pop("prefix", None)
    if isinstance(upstreams, (str, dict)):
        upstreams = [upstreams]
    if not upstreams:
        raise ValueError("a [[proxy]] table needs upstreams = ['http://host:port', ...]")
    merged = {**(defaults or {}), **options}
    return ProxyHandler(upstreams, loop=loop, **merged)
