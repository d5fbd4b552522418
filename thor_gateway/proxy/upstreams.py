"""Upstream sets: the addresses a proxy route sends to, kept fresh through DNS.

Theory of operation: a route names upstream URLs (``http://api.internal:8080/v1``).  Each
URL is a *target*; each address it resolves to is a *member* (:class:`Upstream`), the unit
the balancer picks, counts connections on and ejects.  A name with several addresses (a
Kubernetes headless Service, a Consul name) is several members, so load spreads over all of
them, and a member keeps its counters across re-resolutions as long as its address stays.

Names are resolved through :func:`thor.dns.lookup` (or an injected resolver with the same
signature) when the set starts and every ``resolve_interval`` seconds after that, each time
with a fresh query (``max_age=0``: the resolver's 10 s cache would otherwise stretch a
shorter interval to 10 s).  A failed
lookup keeps the members it had: a DNS outage must not empty a healthy pool.  An address
that disappears leaves the set; requests already sent to it finish normally, and it stays
in ``departed`` so that its counters stay in /metrics (a Prometheus counter must never go
backwards).  An address that comes back revives its member, counters and all (with fresh
health verdicts), so ``departed`` holds at most one member per address ever seen.  Until its
first answer, a name is one member that connects by name.

``https`` targets are not expanded: the TLS client must connect with the name for SNI and
certificate checks, so they stay one member each and the client resolves them.  ``h2c``
targets (cleartext HTTP/2 with prior knowledge, RFC 9113 §3.3) are expanded as ``http``
ones are.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import thor.dns
import thor.loop
from thor_gateway.proxy.health_checks import HealthTracker, PassiveEjection

__all__ = ["Resolver", "Target", "Upstream", "UpstreamSet", "parse_target"]

log = logging.getLogger("thor_gateway.upstreams")

Resolver = Callable[..., None]  # thor.dns.lookup(host, port, callback, *, loop=...)


def fresh_lookup(
    host: str, port: int, callback: thor.dns.Callback, *, loop: thor.loop.Loop
) -> None:
    """:func:`thor.dns.lookup` past its cache: the interval is the set's to decide."""
    thor.dns.lookup(host, port, callback, loop=loop, max_age=0.0)


@dataclass(frozen=True, slots=True)
class Target:
    """One configured upstream URL."""

    scheme: str
    host: str  # as written (a name or an IP literal, without brackets)
    port: int
    base_path: bytes  # the URL's path, prepended to forwarded paths
    weight: int = 1
    max_connections: int | None = None

    @property
    def authority(self) -> bytes:
        """``host[:port]`` for the Host field, the default port left out (RFC 9110 §7.2)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        text = host if self.port == default else f"{host}:{self.port}"
        return text.encode("idna")

    @property
    def is_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_target(spec: str | Mapping[str, Any]) -> Target:
    """A Target from ``"http://host:port/path"`` or ``{"url": ..., "weight": ..., ...}``."""
    if isinstance(spec, str):
        url, options = spec, {}
    else:
        options = dict(spec)
        url = str(options.pop("url"))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "h2c") or not parts.hostname:
        raise ValueError(f"upstream {url!r}: need an http://, https:// or h2c:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"upstream {url!r}: no query or fragment allowed")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    weight = int(options.pop("weight", 1))
    max_conn = options.pop("max_connections", None)
    if options:
        raise ValueError(f"upstream {url!r}: unknown settings {sorted(options)}")
    if weight < 1:
        raise ValueError(f"upstream {url!r}: weight must be at least 1")
    return Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        base_path=parts.path.encode("ascii"),
        weight=weight,
        max_connections=int(max_conn) if max_conn is not None else None,
    )


@dataclass(eq=False, slots=True)
class Upstream:
    """One member: an address the balancer can pick."""

    target: Target
    address: str  # where to connect: an IP address, or the name until it resolved
    health: HealthTracker = field(default_factory=HealthTracker)
    ejection: PassiveEjection = field(default_factory=PassiveEjection)
    active: int = 0  # requests in flight
    requests: int = 0  # requests sent, ever
    failures: int = 0  # attempts that failed (what passive ejection counts), ever
    tunnels: int = 0  # switched connections (WebSocket...) open through it (proxy/tunnel.py)
    tunnel_sent: int = 0  # bytes relayed to it over tunnels, ever
    tunnel_received: int = 0  # bytes relayed from it over tunnels, ever
    origin: str = ""  # "http://127.0.0.1:8080", what the client connects to
    origin_bytes: bytes = b""
    authority: bytes = b""  # the target's, for Host (computed once: it is on the hot path)
    weight: int = 1

    def __post_init__(self) -> None:
        host = f"[{self.address}]" if ":" in self.address else self.address
        self.origin = f"{self.target.scheme}://{host}:{self.target.port}"
        self.origin_bytes = self.origin.encode("ascii")
        self.authority = self.target.authority
        self.weight = self.target.weight

    def has_room(self) -> bool:
        limit = self.target.max_connections
        return limit is None or self.active < limit

    def in_service(self, now: float) -> bool:
        """Healthy by both verdicts (active checks and passive ejection)."""
        return self.health.up and self.ejection.admits(now)

    def __repr__(self) -> str:
        return f"<Upstream {self.origin} active={self.active}>"


MemberFactory = Callable[[Target, str], Upstream]


class UpstreamSet:
    """The members of one route, re-resolved every ``resolve_interval`` seconds (0: never)."""

    def __init__(
        self,
        targets: Iterable[str | Mapping[str, Any] | Target],
        *,
        loop: thor.loop.Loop | None = None,
        resolve_interval: float = 30.0,
        resolver: Resolver | None = None,
        member_factory: MemberFactory = Upstream,
    ) -> None:
        self.targets = [t if isinstance(t, Target) else parse_target(t) for t in targets]
        if not self.targets:
            raise ValueError("an upstream set needs at least one upstream")
        self.loop = loop or thor.loop.default()
        self.resolve_interval = resolve_interval
        self.resolver: Resolver = resolver or fresh_lookup
        self._factory = member_factory
        self._by_target: dict[Target, list[Upstream]] = {
            t: [member_factory(t, t.host)] for t in self.targets
        }
        self.members: list[Upstream] = []
        # Members re-resolution removed, by (target, address): their counters stay in /metrics.
        self.departed: dict[tuple[Target, str], Upstream] = {}
        self.version = 0  # bumped whenever the member list changes (balancers cache on it)
        self._rebuild()
        self._timer: thor.loop.ScheduledEvent | None = None
        self.resolutions = 0

    def _resolvable(self, target: Target) -> bool:
        return target.scheme != "https" and not target.is_literal

    def start(self, done: Callable[[], None] | None = None) -> None:
        """Resolve every name now (``done()`` once all answered), then at the interval."""
        pending = [t for t in self.targets if self._resolvable(t)]
        if not pending:
            if done is not None:
                self.loop.call_soon(done)
            return
        left = [len(pending)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                if done is not None:
                    done()
                self._schedule()

        for target in pending:
            self._resolve(target, one_done)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None

    def _schedule(self) -> None:
        if self.resolve_interval > 0 and self._timer is None:
            self._timer = self.loop.schedule(self.resolve_interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.start()

    def _resolve(self, target: Target, done: Callable[[], None]) -> None:
        def answered(results: list[thor.dns.DnsResult] | Exception) -> None:
            self.resolutions += 1
            if isinstance(results, Exception):
                log.warning("resolving %s failed (%s); keeping its members", target.host, results)
            else:
                self._update(target, results)
            done()

        self.resolver(target.host, target.port, answered, loop=self.loop)

    def _update(self, target: Target, results: list[thor.dns.DnsResult]) -> None:
        addresses: list[str] = []
        for family, _, _, _, sockaddr in results:
            if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
                addresses.append(str(sockaddr[0]))
        if not addresses:
            return
        old = {m.address: m for m in self._by_target[target]}
        if list(old) == addresses:
            return
        self._by_target[target] = [old.get(a) or self._revive(target, a) for a in addresses]
        for address, member in old.items():
            # One that never took a request has no history (the name-member before the
            # first answer, usually).
            if address not in addresses and member.requests:
                self.departed[(target, address)] = member
        self._rebuild()
        log.info("upstream %s now resolves to %s", target.host, ", ".join(addresses))

    def _revive(self, target: Target, address: str) -> Upstream:
        """A member for an address: the one that left (its counters go on), else a new one."""
        fresh = self._factory(target, address)
        member = self.departed.pop((target, address), None)
        if member is None:
            return fresh
        member.health, member.ejection = fresh.health, fresh.ejection  # no stale verdicts
        return member

    def _rebuild(self) -> None:
        self.members = [m for t in self.targets for m in self._by_target[t]]
        self.version += 1
