"""Load balancing: which member of an upstream set takes the next request.

Theory of operation: :func:`choose` narrows the members of a set to *candidates* (in
service by both health verdicts, below their connection limit, not already tried by this
request), then an algorithm picks one of them:

- ``round_robin``: each candidate in turn;
- ``least_connections``: the fewest requests in flight relative to the weight, ties broken
  in turn so equal members share the load;
- ``weighted``: smooth weighted round robin (nginx's): weights 5, 1, 1 give
  ``a a b a c a a``, interleaved instead of bursts;
- ``consistent_hash``: a hash ring of ``replicas`` points per unit of weight, keyed by a
  request key (a header, a cookie, the client address).  A member that leaves moves only
  its own keys; a key whose member is unavailable walks on to the next point of the ring.
  Requests without a key fall back to round robin.

When no member is in service at all the set is in *panic*: every member below its limit is
a candidate again (a dead pool answering 502 helps nobody more than one that might answer;
Envoy's panic threshold, at 0 %).  When members are in service but all at their connection
limit, there is no candidate and the proxy answers 503.

The algorithms are pure (they see only the members and a key); the clock is passed in.
"""

from __future__ import annotations

import hashlib
from bisect import bisect
from collections.abc import Callable, Collection, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Protocol

from thor_gateway.proxy.upstreams import Upstream

__all__ = [
    "ALGORITHMS",
    "Balancer",
    "ConsistentHash",
    "KeyFunction",
    "LeastConnections",
    "RoundRobin",
    "SmoothWeighted",
    "choose",
    "key_function",
    "make_balancer",
]

Headers = list[tuple[bytes, bytes]]
KeyFunction = Callable[[Headers, "tuple[str, int] | None"], "bytes | None"]


class Balancer(Protocol):
    def pick(
        self, members: Sequence[Upstream], candidates: Sequence[Upstream], key: bytes | None
    ) -> Upstream:
        """One of ``candidates`` (never empty); ``members`` is the whole set."""
        ...


def choose(
    balancer: Balancer,
    members: Sequence[Upstream],
    now: float,
    key: bytes | None = None,
    exclude: Collection[Upstream] = (),
) -> Upstream | None:
    """The member for the next request, or None when every one is at its limit or tried."""
    if len(members) == 1 and not exclude:  # the common single-upstream route
        only = members[0]
        return only if only.has_room() else None
    in_service = [m for m in members if m not in exclude and m.in_service(now)]
    if not in_service:  # panic: ignore health rather than fail everything
        in_service = [m for m in members if m not in exclude]
    candidates = [m for m in in_service if m.has_room()]
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    return balancer.pick(members, candidates, key)


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self, members: Sequence[Upstream], candidates: Sequence[Upstream], key: bytes | None
    ) -> Upstream:
        self._next += 1
        return candidates[self._next % len(candidates)]


class LeastConnections:
    """The candidate with the fewest requests in flight per unit of weight."""

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self, members: Sequence[Upstream], candidates: Sequence[Upstream], key: bytes | None
    ) -> Upstream:
        self._next += 1
        n = len(candidates)
        start = self._next % n
        best = candidates[start]
        best_load = best.active / best.weight
        for i in range(1, n):
            member = candidates[(start + i) % n]
            load = member.active / member.weight
            if load < best_load:
                best, best_load = member, load
        return best


class SmoothWeighted:
    """nginx's smooth weighted round robin: every pick adds each weight to its member's
    current value, takes the largest, and subtracts the total from it."""

    def __init__(self) -> None:
        self._current: dict[Upstream, int] = {}

    def pick(
        self, members: Sequence[Upstream], candidates: Sequence[Upstream], key: bytes | None
    ) -> Upstream:
        current = self._current
        if len(current) > 4 * len(members):  # members left the set: forget them
            alive = set(members)
            self._current = current = {m: c for m, c in current.items() if m in alive}
        total = 0
        best: Upstream | None = None
        best_value = 0
        for member in candidates:
            value = current.get(member, 0) + member.weight
            current[member] = value
            total += member.weight
            if best is None or value > best_value:
                best, best_value = member, value
        assert best is not None  # candidates is never empty
        current[best] = best_value - total
        return best


def _point(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class ConsistentHash:
    """A hash ring with ``replicas`` points per unit of weight, rebuilt when members change."""

    def __init__(self, replicas: int = 100) -> None:
        self.replicas = replicas
        self._fallback = RoundRobin()
        self._members: tuple[Upstream, ...] = ()
        self._points: list[int] = []
        self._owners: list[Upstream] = []

    def _build(self, members: Sequence[Upstream]) -> None:
        ring: list[tuple[int, Upstream]] = []
        for member in members:
            # Points come from the address, so a member that stays keeps its arcs.
            name = member.origin.encode("ascii")
            ring.extend(
                (_point(b"%s#%d" % (name, i)), member) for i in range(self.replicas * member.weight)
            )
        ring.sort(key=lambda point: point[0])
        self._points = [p for p, _ in ring]
        self._owners = [m for _, m in ring]
        self._members = tuple(members)

    def pick(
        self, members: Sequence[Upstream], candidates: Sequence[Upstream], key: bytes | None
    ) -> Upstream:
        if key is None:
            return self._fallback.pick(members, candidates, key)
        if tuple(members) != self._members:
            self._build(members)
        allowed = set(candidates)
        owners = self._owners
        n = len(owners)
        start = bisect(self._points, _point(key))
        for i in range(n):
            owner = owners[(start + i) % n]
            if owner in allowed:
                return owner
        return candidates[0]  # unreachable: every candidate is a member


ALGORITHMS: dict[str, Callable[[], Balancer]] = {
    "round_robin": RoundRobin,
    "least_connections": LeastConnections,
    "weighted": SmoothWeighted,
    "consistent_hash": ConsistentHash,
}


def make_balancer(name: str) -> Balancer:
    """A new balancer by name (``round_robin``, ``least_connections``, ``weighted``,
    ``consistent_hash``); dashes are accepted for underscores."""
    try:
        return ALGORITHMS[name.replace("-", "_")]()
    except KeyError:
        raise ValueError(f"unknown balancer {name!r}; choose from {sorted(ALGORITHMS)}") from None


def _cookie(headers: Headers, name: str) -> bytes | None:
    for field_name, value in headers:
        if field_name.lower() == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:
                continue
            morsel = jar.get(name)
            if morsel is not None:
                return morsel.value.encode("latin-1")
    return None


def key_function(spec: str) -> KeyFunction:
    """The request key for consistent hashing: ``"client"`` (the client's IP address),
    ``"header:NAME"`` (the first field line NAME) or ``"cookie:NAME"``."""
    kind, _, name = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("client", "client_address", "ip"):
        return lambda headers, client: client[0].encode("ascii") if client else None
    if kind == "header" and name:
        wanted = name.strip().lower().encode("ascii")

        def header_key(headers: Headers, client: tuple[str, int] | None) -> bytes | None:
            for field_name, value in headers:
                if field_name.lower() == wanted:
                    return value
            return None

        return header_key
    if kind == "cookie" and name:
        cookie = name.strip()
        return lambda headers, client: _cookie(headers, cookie)
    raise ValueError(f"bad hash key {spec!r}: use client, header:NAME or cookie:NAME")
