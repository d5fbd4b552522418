"""The live status page's numbers: per route and per worker, now and over the last minutes.

Theory of operation.  Every route has a :class:`RouteStats`: status-class counters and a
histogram of durations for the current *slot* (``SLOT`` seconds of wall-clock time).
:meth:`Metrics.finished <thor_gateway.operations.metrics.Metrics.finished>` updates both
when a request ends: two list increments, and the ``bisect`` that finds the duration's
bucket also gives its Prometheus bucket (``COARSE_OF``).  Measured with
``benchmarks/status_cost.py`` (callgrind): about 1,400 machine instructions a request
(the router's part of a request is about 40,000, the whole of a request on a native
handler several 100,000), and nothing without ``--metrics-bind``: routes have no
``RouteStats`` until the page is served.  The histogram's buckets
grow by 2**(1/8) (9 %) from 50 µs to about 100 s, so a percentile read from it is the
upper bound of its bucket, at most 9 % above the truth.

A :class:`StatusBoard` (one per process) closes a slot every ``SLOT`` seconds, at multiples
of ``SLOT`` on the wall clock so that the slots of different workers line up: it keeps the
slot's count, 5xx count and percentiles per route in a ring of ``HISTORY`` samples (the
sparklines) and starts a new histogram.  "Recent" numbers (the rate and the percentiles
the page shows in large) cover the last closed slot and the current one: 5 to 10 seconds.

:meth:`StatusBoard.snapshot` is one process's part; it travels inside the metrics snapshot
(under ``"status"``), so with ``--workers N`` it reaches the scraped worker the way
``/metrics`` numbers do (:class:`~thor_gateway.operations.metrics.SharedMetrics`).
:func:`status_document` merges the live workers' parts into the ``/status.json`` answer:
histograms add up, so the merged percentiles are exact to the bucket; in the history, a
slot's percentile over several workers is the highest of theirs (a slot keeps no histogram).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # metrics.py imports this module
    from thor_gateway.operations.metrics import Metrics

__all__ = [
    "BUCKETS",
    "COARSE_OF",
    "FINE_BOUNDS",
    "HISTORY",
    "SLOT",
    "RouteStats",
    "StatusBoard",
    "percentiles",
    "route_kind",
    "status_document",
]

# The Prometheus histogram's bounds (seconds, 1 ms to 30 s; /metrics shows them).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# 50 µs .. ~110 s by 2**(1/8), and BUCKETS too: a duration's fine bucket then gives its
# Prometheus bucket (COARSE_OF), so a request costs one bisect for both.
FINE_BOUNDS = tuple(sorted({0.00005 * 2 ** (i / 8) for i in range(169)} | set(BUCKETS)))
COARSE_OF = (*(bisect_left(BUCKETS, bound) for bound in FINE_BOUNDS), len(BUCKETS))
SLOT = 5.0  # seconds of one history sample
HISTORY = 120  # samples kept: the last 10 minutes
CLASSES = ("aborted", "1xx", "2xx", "3xx", "4xx", "5xx")  # RouteStats.classes, by index
QUANTILES = (0.5, 0.9, 0.99)
_BUCKETS = len(FINE_BOUNDS) + 1  # the last one: beyond the largest bound


class RouteStats:
    """One route's counters (see the module docstring); updated by ``Metrics.finished``."""

    __slots__ = ("classes", "errors_at_tick", "last", "window")

    def __init__(self) -> None:
        self.classes = [0] * len(CLASSES)  # 0: aborted, k: status k xx; ever
        self.window = [0] * _BUCKETS  # durations of the current slot
        self.last = [0] * _BUCKETS  # durations of the last closed slot
        self.errors_at_tick = 0


def percentiles(histogram: dict[int, int], count: int) -> list[float | None]:
    """p50, p90 and p99 (seconds) of a sparse histogram {bucket index: count}."""
    if count <= 0:
        return [None] * len(QUANTILES)
    result: list[float | None] = []
    seen = 0
    items = sorted(histogram.items())
    position = 0
    for quantile in QUANTILES:
        rank = quantile * count
        while position < len(items) and seen + items[position][1] < rank:
            seen += items[position][1]
            position += 1
        index = items[min(position, len(items) - 1)][0]
        result.append(round(FINE_BOUNDS[min(index, len(FINE_BOUNDS) - 1)], 6))
    return result


def _sparse(*histograms: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for histogram in histograms:
        for index, count in enumerate(histogram):
            if count:
                counts[index] = counts.get(index, 0) + count
    return counts


def route_kind(handler: Any) -> str:
    """What serves a route, in one word, for the page."""
    if hasattr(handler, "upstream_status"):
        return "proxy"
    if hasattr(handler, "pool"):
        return "wsgi"
    name = type(getattr(handler, "handler", handler)).__name__.lower()
    for kind in ("asgi", "static", "wsgi", "native"):
        if kind in name:
            return kind
    return "app"


class StatusBoard:
    """One process's status numbers and their history ring."""

    def __init__(
        self,
        routes: Iterable[tuple[str, Any, RouteStats]],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = list(routes)  # (prefix, handler, stats)
        self.metrics = metrics  # a Metrics: the process's totals
        self.clock = clock
        self.started = clock()
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.ticks = [self.started, self.started]  # the last two slot ends (or the start)
        self.totals = [0, 0]  # requests finished by then

    def requests(self) -> int:
        """Requests finished in this process (aborted included)."""
        return sum(self.metrics.requests.values()) + self.metrics.aborted

    def next_tick_in(self) -> float:
        """Seconds to the next slot end on the wall clock."""
        return SLOT - self.clock() % SLOT

    def tick(self) -> None:
        """Close the current slot (every ``SLOT`` seconds)."""
        now = self.clock()
        end = round(now / SLOT) * SLOT
        total = self.requests()
        routes: dict[str, list[Any]] = {}
        for prefix, _, stats in self.routes:
            window = stats.window
            stats.window = [0] * _BUCKETS
            stats.last = window
            count = sum(window)
            errors = stats.classes[5] - stats.errors_at_tick
            stats.errors_at_tick = stats.classes[5]
            if count or errors:
                p50, _, p99 = percentiles(_sparse(window), count)
                routes[prefix] = [count, errors, p50, p99]
        self.history.append({"t": end, "n": total - self.totals[1], "routes": routes})
        self.ticks = [self.ticks[1], now]
        self.totals = [self.totals[1], total]

    def snapshot(self) -> dict[str, Any]:
        """This process's part of ``/status.json`` (JSON-able)."""
        now = self.clock()
        seconds = max(now - self.ticks[0], 0.001)
        routes = []
        for prefix, handler, stats in self.routes:
            pool = getattr(handler, "pool", None)
            upstreams = getattr(handler, "upstream_status", None)
            routes.append(
                {
                    "route": prefix,
                    "kind": route_kind(handler),
                    "classes": list(stats.classes),
                    "recent": _sparse(stats.last, stats.window),
                    "pool": None if pool is None else _pool(pool),
                    "upstreams": upstreams() if upstreams is not None else [],
                }
            )
        return {
            "pid": os.getpid(),
            "started": self.started,
            "now": now,
            "recent_seconds": seconds,
            "recent_requests": self.requests() - self.totals[0],
            "requests": self.requests(),
            "routes": routes,
            "history": list(self.history),
        }


def _pool(pool: Any) -> dict[str, int]:
    waiting = int(pool.waiting)
    return {
        "threads": int(pool.threads),
        "busy": int(pool.admitted) - waiting,
        "waiting": waiting,
        "max_queue": int(pool.max_queue),
    }


def status_document(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``/status.json`` from the live workers' metrics snapshots (see the module docstring)."""
    parts = [(snap, snap["status"]) for snap in snapshots if snap.get("status")]
    parts.sort(key=lambda part: part[1]["pid"])
    now = max((status["now"] for _, status in parts), default=time.time())
    ends = [now - now % SLOT - SLOT * (HISTORY - 1 - i) for i in range(HISTORY)]
    slot_of = {round(end / SLOT): i for i, end in enumerate(ends)}
    workers = [_worker(snap, status, slot_of) for snap, status in parts]
    routes: dict[str, dict[str, Any]] = {}
    for _, status in parts:
        for route in status["routes"]:
            _add_route(routes, route, status, slot_of)
    upstreams = _upstreams(routes)
    rows = [_route_row(merged) for merged in routes.values()]
    rows.sort(key=lambda row: row["route"])
    return {
        "now": now,
        "slot": SLOT,
        "history_times": ends,
        "totals": _totals(workers),
        "workers": workers,
        "routes": rows,
        "upstreams": upstreams,
    }


def _worker(
    snap: dict[str, Any], status: dict[str, Any], slot_of: dict[int, int]
) -> dict[str, Any]:
    rate_history: list[float | None] = [None] * HISTORY
    for sample in status["history"]:
        index = slot_of.get(round(sample["t"] / SLOT))
        if index is not None:
            rate_history[index] = sample["n"] / SLOT
    pools = [route["pool"] for route in status["routes"] if route["pool"]]
    return {
        "pid": status["pid"],
        "uptime": status["now"] - status["started"],
        "requests": status["requests"],
        "rate": round(status["recent_requests"] / status["recent_seconds"], 3),
        "connections": snap.get("connections", 0),
        "in_flight": snap.get("in_flight", 0),
        "threads": sum(pool["threads"] for pool in pools),
        "threads_busy": sum(pool["busy"] for pool in pools),
        "queued": sum(pool["waiting"] for pool in pools),
        "rate_history": rate_history,
    }


def _add_route(
    routes: dict[str, dict[str, Any]],
    route: dict[str, Any],
    status: dict[str, Any],
    slot_of: dict[int, int],
) -> None:
    merged = routes.setdefault(
        route["route"],
        {
            "route": route["route"],
            "kind": route["kind"],
            "classes": [0] * len(CLASSES),
            "recent": {},
            "rate": 0.0,
            "pool": None,
            "workers": [],
            "upstreams": {},
            # per slot: requests, 5xx, p50, p99, whether any worker had the slot
            "history": [[0, 0, None, None, False] for _ in range(HISTORY)],
        },
    )
    merged["classes"] = [a + b for a, b in zip(merged["classes"], route["classes"], strict=True)]
    recent = {int(index): count for index, count in route["recent"].items()}
    for index, count in recent.items():
        merged["recent"][index] = merged["recent"].get(index, 0) + count
    count = sum(recent.values())
    rate = round(count / status["recent_seconds"], 3)
    merged["rate"] += rate
    p50, p90, p99 = percentiles(recent, count)
    merged["workers"].append(
        {"pid": status["pid"], "rate": rate, "p50": p50, "p90": p90, "p99": p99}
    )
    if route["pool"]:
        pool = merged["pool"] or dict.fromkeys(route["pool"], 0)
        merged["pool"] = {name: pool[name] + value for name, value in route["pool"].items()}
    for upstream in route["upstreams"]:
        _add_upstream(merged["upstreams"], upstream)
    for sample in status["history"]:
        position = slot_of.get(round(sample["t"] / SLOT))
        if position is None:
            continue
        slot = merged["history"][position]
        slot[4] = True
        numbers = sample["routes"].get(route["route"])
        if numbers is None:
            continue
        slot[0] += numbers[0]
        slot[1] += numbers[1]
        slot[2] = _highest(slot[2], numbers[2])
        slot[3] = _highest(slot[3], numbers[3])


def _highest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _add_upstream(upstreams: dict[str, dict[str, Any]], upstream: dict[str, Any]) -> None:
    """One worker's view of a member, added to the others': counts add up; "up" in
    how many workers, and the worst state any worker reports."""
    merged = upstreams.setdefault(
        upstream["upstream"],
        {"upstream": upstream["upstream"], "state": "up", "up_in": 0, "workers": 0},
    )
    for name in ("in_flight", "requests", "failures", "ejections"):
        merged[name] = merged.get(name, 0) + upstream[name]
    merged["workers"] += 1
    merged["up_in"] += upstream["state"] == "up"
    if _SEVERITY.index(upstream["state"]) > _SEVERITY.index(merged["state"]):
        merged["state"] = upstream["state"]


_SEVERITY = ["up", "probation", "ejected", "down"]


def _route_row(merged: dict[str, Any]) -> dict[str, Any]:
    recent = merged.pop("recent")
    p50, p90, p99 = percentiles(recent, sum(recent.values()))
    history = merged.pop("history")
    merged.pop("upstreams")
    merged["rate"] = round(merged["rate"], 3)
    return {
        **merged,
        "classes": dict(zip(CLASSES, merged["classes"], strict=True)),
        "requests": sum(merged["classes"]),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "rate_history": [slot[0] / SLOT if slot[4] else None for slot in history],
        "errors_history": [slot[1] if slot[4] else None for slot in history],
        "p99_history": [slot[3] for slot in history],
    }


def _upstreams(routes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"route": prefix, **upstream}
        for prefix in sorted(routes)
        for upstream in routes[prefix]["upstreams"].values()
    ]


def _totals(workers: list[dict[str, Any]]) -> dict[str, Any]:
    history: list[float | None] = [None] * HISTORY
    for worker in workers:
        for index, rate in enumerate(worker["rate_history"]):
            if rate is not None:
                history[index] = (history[index] or 0.0) + rate
    return {
        "workers": len(workers),
        "requests": sum(w["requests"] for w in workers),
        "rate": round(sum(w["rate"] for w in workers), 3),
        "connections": sum(w["connections"] for w in workers),
        "in_flight": sum(w["in_flight"] for w in workers),
        "threads": sum(w["threads"] for w in workers),
        "threads_busy": sum(w["threads_busy"] for w in workers),
        "queued": sum(w["queued"] for w in workers),
        "rate_history": history,
    }
