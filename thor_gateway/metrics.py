"""Counters of one worker, rendered in the Prometheus text format (version 0.0.4).

Everything is updated on the loop thread (by the router, when an exchange
starts and when it is done), so plain integers suffice.  Names follow the
Prometheus conventions: ``_total`` counters, base units (seconds, bytes).

With ``--workers N`` each worker keeps its own numbers and the metrics bind is
shared, so a scrape sees one worker (named by the ``pid`` label).  Sum over
``pid`` in the query.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Callable

__all__ = ["BUCKETS", "Metrics"]

# Request duration buckets, seconds: 1 ms to 30 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


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
        self.draining = False

    def started(self) -> None:
        """A request arrived."""
        self.in_flight += 1

    def finished(self, status: int, completed: bool, seconds: float, sent: int, got: int) -> None:
        """A request is over (``completed`` False: aborted or the client left)."""
        self.in_flight -= 1
        if completed and 100 <= status < 600:
            self.requests[STATUS_CLASSES[status // 100 - 1]] += 1
        else:
            self.aborted += 1
        self.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        self.bytes_sent += sent
        self.bytes_received += got

    def render(self) -> bytes:
        """The exposition text."""
        pid = f'pid="{os.getpid()}"'
        out = [
            "# HELP thor_requests_total Requests answered, by status class.",
            "# TYPE thor_requests_total counter",
        ]
        out += [
            f'thor_requests_total{{{pid},status="{cls}"}} {n}' for cls, n in self.requests.items()
        ]
        out += _single(
            "requests_aborted_total", "counter", "Requests cut short.", pid, self.aborted
        )
        out += _single("requests_in_flight", "gauge", "Requests in progress.", pid, self.in_flight)
        out += _single("connections", "gauge", "Open client connections.", pid, self.connections())
        out += [
            "# HELP thor_request_duration_seconds Time from request start to response end.",
            "# TYPE thor_request_duration_seconds histogram",
        ]
        total = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.bucket_counts, strict=True):
            total += count
            label = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'thor_request_duration_seconds_bucket{{{pid},le="{label}"}} {total}')
        out.append(f"thor_request_duration_seconds_sum{{{pid}}} {self.duration_sum!r}")
        out.append(f"thor_request_duration_seconds_count{{{pid}}} {total}")
        out += _single(
            "response_body_bytes_total",
            "counter",
            "Response body bytes sent.",
            pid,
            self.bytes_sent,
        )
        out += _single(
            "request_body_bytes_total",
            "counter",
            "Request body bytes received.",
            pid,
            self.bytes_received,
        )
        out += _single("draining", "gauge", "1 while shutting down.", pid, int(self.draining))
        return ("\n".join(out) + "\n").encode("ascii")


def _single(name: str, kind: str, text: str, labels: str, value: int) -> list[str]:
    return [
        f"# HELP thor_{name} {text}",
        f"# TYPE thor_{name} {kind}",
        f"thor_{name}{{{labels}}} {value}",
    ]
