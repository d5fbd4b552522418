"""Request metrics, rendered in the Prometheus text format (version 0.0.4).

Everything is updated on the loop thread (by the router, when an exchange
starts and when it is done), so plain integers suffice.  Names follow the
Prometheus conventions: ``_total`` counters, base units (seconds, bytes).

With ``--workers N`` every worker counts for itself, and the metrics listener
is shared, so a scrape lands on any one worker.  To answer for the whole
server, each worker writes a snapshot of its numbers to a directory the master
created (:class:`SharedMetrics`: one small JSON file per worker, replaced
atomically, every second and on each scrape); the worker that is scraped adds
them up.  Counters of workers that have exited stay in the sum (a counter must
never go down); gauges (requests in flight, connections) count live workers
only.  Snapshots of other workers may be up to a second old.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from thor_gateway.operations.status import BUCKETS, COARSE_OF, FINE_BOUNDS, RouteStats

__all__ = [
    "BUCKETS",
    "Metrics",
    "SharedMetrics",
    "UpstreamSamples",
    "connections_by_version",
    "upstream_labels",
]

# Request duration buckets, seconds, 1 ms to 30 s: BUCKETS (from operations/status.py).
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_COUNTERS = ("aborted", "duration_sum", "bytes_sent", "bytes_received")

# Proxy members: their label set (route="/api",upstream="http://10.0.0.5:8080") -> numbers.
UpstreamSamples = dict[str, dict[str, int]]
# (metric, type, help, field); requests and failures are counters, the rest gauges.
_UPSTREAM_METRICS = (
    (
        "requests_total",
        "counter",
        "Attempts sent to a proxy member (retries included).",
        "requests",
    ),
    (
        "failures_total",
        "counter",
        "Attempts that failed: no connection, timeout, broken response or a failure status.",
        "failures",
    ),
    ("in_flight", "gauge", "Requests in progress on a proxy member.", "in_flight"),
    (
        "in_service",
        "gauge",
        "1 while a member takes traffic (health checks and ejection); summed over workers.",
        "in_service",
    ),
    ("tunnels", "gauge", "Switched connections (WebSocket...) open to a proxy member.", "tunnels"),
    (
        "tunnel_sent_bytes_total",
        "counter",
        "Bytes relayed to a proxy member over switched connections.",
        "tunnel_sent",
    ),
    (
        "tunnel_received_bytes_total",
        "counter",
        "Bytes relayed from a proxy member over switched connections.",
        "tunnel_received",
    ),
    (
        "ejections_total",
        "counter",
        "Times passive ejection took a proxy member out of service.",
        "ejections",
    ),
    ("http2_streams", "gauge", "HTTP/2 streams open to a proxy member.", "streams_http2"),
)
# Connections to a proxy member, one sample per protocol: (label value, field).
_UPSTREAM_CONNECTIONS = (("HTTP/1.1", "connections_http1"), ("HTTP/2", "connections_http2"))
_UPSTREAM_COUNTERS = ("requests", "failures", "tunnel_sent", "tunnel_received", "ejections")
# HTTP caches, by route: (metric, type, help, field); all counters but the stored bytes.
_CACHE_METRICS = (
    ("cache_hits_total", "counter", "Requests answered from the cache.", "hits"),
    ("cache_misses_total", "counter", "Requests the cache had nothing for.", "misses"),
    ("cache_stale_total", "counter", "Stored responses validated with the upstream.", "stale"),
    ("cache_bypass_total", "counter", "Requests the cache took no part in.", "bypass"),
    ("cache_stored_total", "counter", "Responses stored.", "stored"),
    ("cache_bytes", "gauge", "Bytes the cache holds (summed over workers).", "bytes"),
)


def upstream_labels(route: str, upstream: str) -> str:
    """The label set of one proxy member, escaped as the text format requires."""
    return f'route="{_escape(route)}",upstream="{_escape(upstream)}"'


def connections_by_version(servers: Iterable[Any]) -> dict[str, int]:
    """The open connections of ``servers`` (``HttpServer``s), by HTTP version: an HTTP/2
    connection says so (``http_version``); the others carry HTTP/1.x."""
    counts: dict[str, int] = {}
    for server in servers:
        for conn in server.connections:
            version = getattr(conn, "http_version", "1.1")
            counts[version] = counts.get(version, 0) + 1
    return counts


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# The versions a request arrives over, named once rather than decoded per request.
_VERSION_NAMES = {b"1.1": "1.1", b"1.0": "1.0", b"2": "2"}


class Metrics:
    """The numbers; :meth:`render` writes them out."""

    def __init__(self) -> None:
        self.requests = dict.fromkeys(STATUS_CLASSES, 0)
        self.aborted = 0
        self.in_flight = 0
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connections: Callable[[], int] = lambda: 0
        self.connections_by_protocol: Callable[[], dict[str, int]] = dict  # "1.1", "2"
        self.websockets: Callable[[], int] = lambda: 0  # open, handshakes included
        self.upstreams: Callable[[], UpstreamSamples] = dict  # set when proxies are mounted
        self.caches: Callable[[], dict[str, dict[str, int]]] = dict  # route -> cache numbers
        self.draining = False
        self.protocols: dict[str, int] = {}  # requests by HTTP version ("1.1", "2")
        self.status: Callable[[], dict[str, Any]] = dict  # the status page's part (StatusBoard)

    def started(self, version: bytes = b"1.1") -> None:
        """A request arrived, over HTTP/``version``."""
        self.in_flight += 1
        name = _VERSION_NAMES.get(version) or version.decode("latin-1")
        self.protocols[name] = self.protocols.get(name, 0) + 1

    def finished(
        self,
        status: int,
        completed: bool,
        seconds: float,
        sent: int,
        got: int,
        route: RouteStats | None = None,
    ) -> None:
        """A request is over (``completed`` False: aborted or the client left); ``route``:
        the counters of the route that took it (None: a probe, a 404...)."""
        self.in_flight -= 1
        if completed and 100 <= status < 600:
            kind = status // 100
            self.requests[STATUS_CLASSES[kind - 1]] += 1
        else:
            kind = 0
            self.aborted += 1
        if route is None:
            self.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        else:  # the status page's numbers too (operations/status.py)
            fine = bisect_left(FINE_BOUNDS, seconds)
            route.classes[kind] += 1
            route.window[fine] += 1
            self.bucket_counts[COARSE_OF[fine]] += 1
        self.duration_sum += seconds
        self.bytes_sent += sent
        self.bytes_received += got

    def snapshot(self) -> dict[str, Any]:
        """The numbers as plain JSON-able data."""
        return {
            "requests": dict(self.requests),
            "aborted": self.aborted,
            "in_flight": self.in_flight,
            "buckets": list(self.bucket_counts),
            "duration_sum": self.duration_sum,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "connections": self.connections(),
            "connections_by_protocol": self.connections_by_protocol(),
            "websockets": self.websockets(),
            "draining": int(self.draining),
            "upstreams": self.upstreams(),
            "caches": self.caches(),
            "protocols": dict(self.protocols),
            "status": self.status(),
        }

    @classmethod
    def total(cls, live: Iterable[dict[str, Any]], gone: Iterable[dict[str, Any]]) -> Metrics:
        """The sum of snapshots: counters from all, gauges from the ``live`` ones."""
        result = cls()
        connections = 0
        by_protocol: dict[str, int] = {}
        websockets = 0
        upstreams: UpstreamSamples = {}
        for snap, alive in [(s, True) for s in live] + [(s, False) for s in gone]:
            for cls_name, count in snap["requests"].items():
                result.requests[cls_name] = result.requests.get(cls_name, 0) + count
            for name in _COUNTERS:
                setattr(result, name, getattr(result, name) + snap[name])
            for version, count in snap.get("protocols", {}).items():
                result.protocols[version] = result.protocols.get(version, 0) + count
            result.bucket_counts = [
                a + b for a, b in zip(result.bucket_counts, snap["buckets"], strict=True)
            ]
            if alive:
                result.in_flight += snap["in_flight"]
                connections += snap["connections"]
                for version, count in snap.get("connections_by_protocol", {}).items():
                    by_protocol[version] = by_protocol.get(version, 0) + count
                websockets += snap.get("websockets", 0)
                result.draining = result.draining or bool(snap["draining"])
            for key, values in snap.get("upstreams", {}).items():
                sums = upstreams.setdefault(key, dict.fromkeys(values, 0))
                for name, value in values.items():
                    if alive or name in _UPSTREAM_COUNTERS:
                        sums[name] = sums.get(name, 0) + value
        caches: dict[str, dict[str, int]] = {}
        for snap, alive in [(s, True) for s in live] + [(s, False) for s in gone]:
            for route, values in snap.get("caches", {}).items():
                sums = caches.setdefault(route, dict.fromkeys(values, 0))
                for name, value in values.items():
                    if alive or name != "bytes":
                        sums[name] = sums.get(name, 0) + value
        result.connections = lambda: connections
        result.connections_by_protocol = lambda: by_protocol
        result.websockets = lambda: websockets
        result.upstreams = lambda: upstreams
        result.caches = lambda: caches
        return result

    def render(self, labels: str = "") -> bytes:
        """The exposition text; ``labels`` (``pid="12"``) go on every sample."""
        sep = "," if labels else ""
        out = [
            "# HELP thor_requests_total Requests answered, by status class.",
            "# TYPE thor_requests_total counter",
        ]
        out += [
            f'thor_requests_total{{{labels}{sep}status="{cls}"}} {n}'
            for cls, n in self.requests.items()
        ]
        if self.protocols:
            out += [
                "# HELP thor_requests_by_protocol_total Requests received, by HTTP version.",
                "# TYPE thor_requests_by_protocol_total counter",
            ]
            out += [
                f'thor_requests_by_protocol_total{{{labels}{sep}protocol="HTTP/{name}"}} {n}'
                for name, n in sorted(self.protocols.items())
            ]
        out += _single(
            "requests_aborted_total", "counter", "Requests cut short.", labels, self.aborted
        )
        out += _single(
            "requests_in_flight", "gauge", "Requests in progress.", labels, self.in_flight
        )
        out += _single(
            "connections", "gauge", "Open client connections.", labels, self.connections()
        )
        by_protocol = sorted(self.connections_by_protocol().items())
        if by_protocol:
            out += [
                "# HELP thor_connections_by_protocol Open client connections, by HTTP version.",
                "# TYPE thor_connections_by_protocol gauge",
            ]
            out += [
                f'thor_connections_by_protocol{{{labels}{sep}protocol="HTTP/{name}"}} {n}'
                for name, n in by_protocol
            ]
        out += _single(
            "websockets_open",
            "gauge",
            "Open WebSockets of hosted apps (ASGI, native).",
            labels,
            self.websockets(),
        )
        out += [
            "# HELP thor_request_duration_seconds Time from request start to response end.",
            "# TYPE thor_request_duration_seconds histogram",
        ]
        total = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.bucket_counts, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'thor_request_duration_seconds_bucket{{{labels}{sep}le="{le}"}} {total}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"thor_request_duration_seconds_sum{braces} {self.duration_sum!r}")
        out.append(f"thor_request_duration_seconds_count{braces} {total}")
        out += _single(
            "response_body_bytes_total",
            "counter",
            "Response body bytes sent.",
            labels,
            self.bytes_sent,
        )
        out += _single(
            "request_body_bytes_total",
            "counter",
            "Request body bytes received.",
            labels,
            self.bytes_received,
        )
        out += _single("draining", "gauge", "1 while shutting down.", labels, int(self.draining))
        samples = sorted(self.upstreams().items())
        for name, kind, text, field in _UPSTREAM_METRICS if samples else ():
            out += [f"# HELP thor_upstream_{name} {text}", f"# TYPE thor_upstream_{name} {kind}"]
            out += [
                f"thor_upstream_{name}{{{labels}{sep}{key}}} {values.get(field, 0)}"
                for key, values in samples
            ]
        if samples:
            out += [
                "# HELP thor_upstream_connections Connections open to a proxy member, by protocol.",
                "# TYPE thor_upstream_connections gauge",
            ]
            out += [
                f'thor_upstream_connections{{{labels}{sep}{key},protocol="{protocol}"}} '
                f"{values.get(field, 0)}"
                for key, values in samples
                for protocol, field in _UPSTREAM_CONNECTIONS
            ]
        caches = sorted(self.caches().items())
        for name, kind, text, field in _CACHE_METRICS if caches else ():
            out += [f"# HELP thor_{name} {text}", f"# TYPE thor_{name} {kind}"]
            out += [
                f'thor_{name}{{{labels}{sep}route="{_escape(route)}"}} {values.get(field, 0)}'
                for route, values in caches
            ]
        return ("\n".join(out) + "\n").encode("utf-8")


def _single(name: str, kind: str, text: str, labels: str, value: int) -> list[str]:
    braces = f"{{{labels}}}" if labels else ""
    return [
        f"# HELP thor_{name} {text}",
        f"# TYPE thor_{name} {kind}",
        f"thor_{name}{braces} {value}",
    ]


class SharedMetrics:
    """One worker's side of the shared snapshot directory (see the module docstring)."""

    def __init__(self, folder: str, metrics: Metrics) -> None:
        self.folder = folder
        self.metrics = metrics
        self.pid = os.getpid()

    def dump(self) -> None:
        """Replace this worker's snapshot file."""
        path = os.path.join(self.folder, f"{self.pid}.json")
        temporary = f"{path}.tmp"
        try:
            with open(temporary, "w", encoding="ascii") as file:
                json.dump(self.metrics.snapshot(), file)
            os.replace(temporary, path)
        except OSError:
            pass  # the master removed the folder: it is shutting down

    def collect(self) -> Metrics:
        """The whole server's numbers, this worker's own fresh."""
        return Metrics.total(*self.snapshots())

    def live(self) -> list[dict[str, Any]]:
        """The snapshots of the workers alive (the status page's)."""
        return self.snapshots()[0]

    def snapshots(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every worker's snapshot, this one's fresh: (alive, exited)."""
        self.dump()
        live: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        try:
            names = os.listdir(self.folder)
        except OSError:
            names = []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.folder, name), encoding="ascii") as file:
                    snap = json.load(file)
            except (OSError, ValueError):
                continue
            (live if _alive(int(name[:-5])) else gone).append(snap)
        return live, gone


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
