"""The status page's numbers (/status.json) and the page itself (/status), on --metrics-bind."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import requests

from tests.gateway.gateway_helpers import poll
from tests.gateway.proxy_support import refused_port
from thor_gateway.operations.metrics import Metrics
from thor_gateway.operations.status import (
    FINE_BOUNDS,
    HISTORY,
    SLOT,
    RouteStats,
    StatusBoard,
    percentiles,
    route_kind,
    status_document,
)
from thor_gateway.operations.status_page import page_html

APPS = "tests.gateway.gateway_apps"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Pool:
    """What the board reads of a WSGI handler's ThreadPool."""

    threads = 4
    admitted = 3
    waiting = 1
    max_queue = 8


class WsgiLike:
    pool = Pool()


def board_with_traffic(clock: Clock) -> tuple[Metrics, StatusBoard, RouteStats]:
    metrics = Metrics()
    stats = RouteStats()
    board = StatusBoard([("/app", WsgiLike(), stats)], metrics, clock)
    metrics.status = board.snapshot
    for index in range(100):  # 1 ms .. 100 ms
        metrics.started()
        metrics.finished(200, True, (index + 1) / 1000, 10, 0, stats)
    metrics.started()
    metrics.finished(503, True, 0.5, 0, 0, stats)
    metrics.started()
    metrics.finished(0, False, 0.001, 0, 0, stats)
    metrics.started()
    metrics.finished(404, True, 0.001, 0, 0)  # no route: counted globally only
    return metrics, board, stats


def test_percentiles_are_bucket_upper_bounds_within_9_percent() -> None:
    assert percentiles({}, 0) == [None, None, None]
    for truth in (0.0001, 0.003, 0.25, 7.0):
        index = FINE_BOUNDS.index(next(b for b in FINE_BOUNDS if b >= truth))
        p50, p90, p99 = percentiles({index: 5}, 5)
        assert p50 == p90 == p99
        assert p50 is not None
        assert truth <= p50 <= truth * 2 ** (1 / 8) + 1e-6


def test_route_kinds() -> None:
    from thor_gateway.hosting.native import NativeHandler
    from thor_gateway.routing.deadline import Deadline

    class AsgiHandler:
        pass

    class Proxy:
        def upstream_status(self) -> list[Any]:
            return []

    native = NativeHandler(lambda exchange: None)
    assert route_kind(native) == "native"
    assert route_kind(Deadline(AsgiHandler(), 5.0, None)) == "asgi"  # type: ignore[arg-type]
    assert route_kind(WsgiLike()) == "wsgi"
    assert route_kind(Proxy()) == "proxy"
    assert route_kind(object()) == "app"


def test_board_counts_per_route_and_closes_slots() -> None:
    clock = Clock(1000.0)
    metrics, board, stats = board_with_traffic(clock)
    assert stats.classes == [1, 0, 100, 0, 0, 1]  # aborted, 1xx..5xx: the 404 had no route
    clock.now = 1005.0
    board.tick()
    clock.now = 1007.5
    metrics.started()
    metrics.finished(200, True, 0.002, 0, 0, stats)
    document = status_document([metrics.snapshot()])
    (route,) = document["routes"]
    assert route["route"] == "/app"
    assert route["kind"] == "wsgi"
    assert route["classes"] == {
        "aborted": 1,
        "1xx": 0,
        "2xx": 101,
        "3xx": 0,
        "4xx": 0,
        "5xx": 1,
    }
    assert route["requests"] == 103
    # Recent: the closed slot and the current one, 7.5 s since the start.
    assert route["rate"] == round(103 / 7.5, 3)
    assert 0.050 <= route["p50"] <= 0.050 * 1.1
    assert 0.090 <= route["p90"] <= 0.090 * 1.1
    assert 0.099 <= route["p99"] <= 0.5
    assert route["pool"] == {"threads": 4, "busy": 2, "waiting": 1, "max_queue": 8}
    # The closed slot is the last but one history point (the current slot is open).
    assert len(route["rate_history"]) == HISTORY
    assert route["rate_history"][-1] == 102 / SLOT
    assert route["errors_history"][-1] == 1
    assert route["rate_history"][-2] is None  # before the start
    (worker,) = document["workers"]
    assert worker["requests"] == 104
    assert worker["rate_history"][-1] == 103 / SLOT
    assert document["totals"]["threads_busy"] == 2
    assert document["history_times"][-1] == 1005.0


def test_workers_merge() -> None:
    clock = Clock(2000.0)
    first, _, _ = board_with_traffic(clock)
    second, board, _ = board_with_traffic(clock)
    clock.now = 2005.0
    board.tick()
    snaps = [json.loads(json.dumps(m.snapshot())) for m in (first, second)]  # as files carry them
    snaps[1]["status"]["pid"] += 1
    document = status_document(snaps)
    assert [w["requests"] for w in document["workers"]] == [103, 103]
    (route,) = document["routes"]
    assert route["classes"]["2xx"] == 200
    assert len(route["workers"]) == 2
    assert 0.050 <= route["p50"] <= 0.055  # merged histograms: exact to the bucket
    assert document["totals"]["requests"] == 206
    assert document["totals"]["threads"] == 8
    assert route["rate_history"][-1] == 102 / SLOT  # only the second worker closed a slot


def test_page_is_self_contained() -> None:
    page = page_html().decode("utf-8")
    assert "<script>" in page
    assert "status.json" in page
    # Nothing loaded from elsewhere: no external script, style, font or image.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page
    assert "url(" not in page


def test_status_json_over_a_socket(start_gateway: Any, tmp_path: Any) -> None:
    backend = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0")
    dead = f"http://127.0.0.1:{refused_port()}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[[proxy]]\nprefix = "/api"\nupstreams = ["{backend.url}", "{dead}"]\nmax_fails = 1\n'
    )
    gateway = start_gateway(
        "-c",
        str(config),
        "--mount",
        f"/app={APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--metrics-bind",
        "127.0.0.1:0",
    )
    status_url = f"http://127.0.0.1:{gateway.metrics_port}/status"
    with requests.Session() as session:
        took = []  # each request's time as the client saw it: the server's is shorter
        for _ in range(10):
            began = time.monotonic()
            assert session.get(gateway.url + "/app/x?sleep=0.05", timeout=10).status_code == 200
            took.append(time.monotonic() - began)
        for _ in range(4):
            assert session.get(gateway.url + "/api/y", timeout=10).status_code == 200
        assert session.get(gateway.url + "/elsewhere", timeout=10).status_code == 404
        response = session.get(status_url + ".json", timeout=10)
        page = session.get(status_url, timeout=10)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.content == page_html()
    document = response.json()
    routes = {route["route"]: route for route in document["routes"]}
    assert set(routes) == {"/app", "/api"}
    app, api = routes["/app"], routes["/api"]
    assert (app["kind"], api["kind"]) == ("wsgi", "proxy")
    assert app["classes"]["2xx"] == 10
    assert api["classes"]["2xx"] == 4
    # The app sleeps 50 ms; a percentile is its bucket's upper bound, at most 9 % above.
    assert 0.050 <= app["p50"] <= sorted(took)[5] * 1.1
    assert app["p99"] <= max(took) * 1.1
    assert app["p99"] >= app["p90"] >= app["p50"]
    assert app["rate"] > 0
    assert app["pool"]["threads"] >= 1
    (worker,) = document["workers"]
    assert worker["requests"] == 15  # the 404 too: it had no route, but the worker served it
    assert worker["connections"] == 1  # the session's keep-alive connection
    upstreams = {u["upstream"]: u for u in document["upstreams"]}
    # The dead member: tried once, failed, ejected (max_fails = 1); the live one took the rest.
    assert upstreams[dead]["state"] == "ejected"
    assert upstreams[dead]["ejections"] == 1
    assert upstreams[dead]["failures"] == 1
    assert upstreams[backend.url]["state"] == "up"
    assert upstreams[backend.url]["requests"] == 4
    assert upstreams[backend.url]["in_flight"] == 0
    # /metrics counts the ejection too.
    metrics = requests.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10).text
    assert f'thor_upstream_ejections_total{{route="/api",upstream="{dead}"}} 1' in metrics
    assert requests.post(status_url + ".json", timeout=10).status_code == 405
    assert gateway.stop() == 0


def test_status_json_shows_each_worker(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "-w", "2", "--metrics-bind", "127.0.0.1:0"
    )
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    served: dict[int, int] = {}
    for _ in range(30):
        with requests.Session() as session:  # new connections: both workers serve
            pid = session.get(gateway.url + "/w", timeout=10).json()["pid"]
            served[pid] = served.get(pid, 0) + 1
    status_url = f"http://127.0.0.1:{gateway.metrics_port}/status.json"
    seen: dict[str, Any] = {}

    def counted() -> bool:
        seen.update(requests.get(status_url, timeout=10).json())
        return sum(route["classes"]["2xx"] for route in seen["routes"]) == 30

    poll(counted, 10, "every worker's requests in /status.json")
    assert len(served) == 2
    assert {w["pid"]: w["requests"] for w in seen["workers"]} == served
    (route,) = seen["routes"]
    assert {w["pid"] for w in route["workers"]} == set(served)
    assert seen["totals"]["workers"] == 2
    assert gateway.stop() == 0
