"""What the status page's counters cost a request: the router's path, in instructions.

Run: python benchmarks/status_cost.py            (needs valgrind)

One iteration is what the router does for a request outside the handler and the server:
``Router.dispatch`` (routing, the Request) and the ``done`` listener (the metrics, where
the per-route status counters are updated), on a fake exchange.  Instructions are counted
with callgrind as in parser_bench.py: I(N) for N = 200 and 1200 iterations after a warm-up,
(I(3200) - I(200)) / 3000.  ``metrics`` alone is ``Metrics.finished`` with and without a
route's counters.  Run it from another checkout (PYTHONPATH) to compare before and after.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from thor_gateway.operations.metrics import Metrics
from thor_gateway.routing.router import Route, Router


class _NoStats:
    """Before the status page (to run this file from an older checkout)."""


try:
    from thor_gateway.operations.status import RouteStats
except ImportError:
    RouteStats = _NoStats  # type: ignore[assignment,misc]


class _Loop:
    def time(self) -> float:
        return 1.0


class _Exchange:
    """The attributes the router reads of an exchange; ``done`` is kept to be fired."""

    method = b"GET"
    uri = b"/app/items?page=2"
    req_hdrs = [(b"Host", b"example.com"), (b"Accept", b"*/*")]
    req_version = b"1.1"
    client_address = ("127.0.0.1", 50000)
    server_address = ("127.0.0.1", 8000)
    scheme = "http"
    loop = _Loop()
    start_time = 0.99
    res_status = 200
    res_bytes = 120
    req_body_bytes = 0
    res_hdrs: list[tuple[bytes, bytes]] = []

    def __init__(self) -> None:
        self.done: Callable[[bool], None] = lambda completed: None

    def on(self, event: str, listener: Callable[[bool], None]) -> None:
        self.done = listener


class _Handler:
    def handle(self, exchange: Any, request: Any) -> None:
        pass


def cases() -> dict[str, Callable[[], None]]:
    router = Router([Route(b"/app", _Handler()), Route(b"/api", _Handler())])
    counted = Router([Route(b"/app", _Handler()), Route(b"/api", _Handler())])
    for route in counted.routes if RouteStats is not _NoStats else ():
        route.stats = RouteStats()  # what the status page does when it starts
    exchange = _Exchange()

    def route_one() -> None:
        router.dispatch(exchange, exchange.method, exchange.uri, exchange.req_hdrs)
        exchange.done(True)

    def route_counted() -> None:
        counted.dispatch(exchange, exchange.method, exchange.uri, exchange.req_hdrs)
        exchange.done(True)

    metrics = Metrics()
    stats = RouteStats()

    def finished_plain() -> None:
        metrics.started()
        metrics.finished(200, True, 0.01, 100, 0)

    def finished_route() -> None:
        metrics.started()
        metrics.finished(200, True, 0.01, 100, 0, stats)  # type: ignore[call-arg]

    found = {"router": route_one, "metrics": finished_plain}
    if RouteStats is not _NoStats:  # this checkout has the status page
        found["router+status"] = route_counted
        found["metrics+route"] = finished_route
    return found


def run_loop(name: str, count: int) -> None:
    func = cases()[name]
    for _ in range(200):
        func()
    for _ in range(count):
        func()


def instructions(name: str) -> float:
    valgrind = shutil.which("valgrind")
    assert valgrind is not None, "needs valgrind"
    counts = []
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    for count in (200, 3200):
        done = subprocess.run(
            [*command, __file__, "--loop", name, str(count)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found is not None, done.stderr[-500:]
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / 3000


def main() -> None:
    if sys.argv[1:2] == ["--loop"]:
        run_loop(sys.argv[2], int(sys.argv[3]))
        return
    for name in cases():
        print(f"{name:15} {instructions(name):8.0f} instructions per request")


if __name__ == "__main__":
    main()
