"""/metrics in the Prometheus text format, on --metrics-bind."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import requests

from tests.gateway.gateway_helpers import poll
from tests.gateway.proxy_support import refused_port
from thor_gateway.operations.metrics import BUCKETS, Metrics, upstream_labels

APPS = "tests.gateway.gateway_apps"
SAMPLE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)\})? (\S+)$')


def parse(text: str) -> dict[tuple[str, str], float]:
    """Every sample as {(name, labels): value}; fails on a line that is not valid."""
    samples = {}
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples[(match[1], match[3] or "")] = float(match[5])
    for name, _ in samples:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"{name} has no # TYPE"
    return samples


def test_render_is_valid_and_cumulative() -> None:
    metrics = Metrics()
    metrics.started()
    metrics.finished(200, True, 0.003, 10, 5)
    metrics.started()
    metrics.finished(503, True, 100.0, 0, 0)
    metrics.started(b"2")
    metrics.finished(0, False, 0.0005, 0, 0)
    samples = parse(metrics.render().decode())
    assert samples[("thor_requests_by_protocol_total", 'protocol="HTTP/1.1"')] == 2
    assert samples[("thor_requests_by_protocol_total", 'protocol="HTTP/2"')] == 1
    total = Metrics.total([metrics.snapshot()], [metrics.snapshot()])
    assert total.protocols == {"1.1": 4, "2": 2}
    assert samples[("thor_requests_total", 'status="2xx"')] == 1
    assert samples[("thor_requests_total", 'status="5xx"')] == 1
    assert samples[("thor_requests_aborted_total", "")] == 1
    assert samples[("thor_request_duration_seconds_bucket", 'le="0.001"')] == 1
    assert samples[("thor_request_duration_seconds_bucket", 'le="0.005"')] == 2
    assert samples[("thor_request_duration_seconds_bucket", f'le="{BUCKETS[-1]!r}"')] == 2
    assert samples[("thor_request_duration_seconds_bucket", 'le="+Inf"')] == 3
    assert samples[("thor_request_duration_seconds_count", "")] == 3
    assert samples[("thor_response_body_bytes_total", "")] == 10
    assert samples[("thor_request_body_bytes_total", "")] == 5


def test_upstream_samples_add_up_and_render() -> None:
    a, b = (
        upstream_labels("/api", "http://10.0.0.5:80"),
        upstream_labels("/api", "http://10.0.0.6:80"),
    )
    live = {a: {"requests": 5, "failures": 1, "in_flight": 2, "in_service": 1}}
    gone = {
        a: {"requests": 7, "failures": 2, "in_flight": 3, "in_service": 1},
        b: {"requests": 1, "failures": 1, "in_flight": 0, "in_service": 0},
    }
    snaps = []
    for upstreams in (live, gone):
        metrics = Metrics()
        metrics.upstreams = lambda upstreams=upstreams: upstreams  # type: ignore[misc]
        snaps.append(metrics.snapshot())
    total = Metrics.total([snaps[0]], [snaps[1]])
    samples = parse(total.render().decode())
    # Counters keep an exited worker's share; gauges count live workers only.
    assert samples[("thor_upstream_requests_total", a)] == 12
    assert samples[("thor_upstream_failures_total", a)] == 3
    assert samples[("thor_upstream_in_flight", a)] == 2
    assert samples[("thor_upstream_in_service", a)] == 1
    assert samples[("thor_upstream_requests_total", b)] == 1
    assert samples[("thor_upstream_in_service", b)] == 0
    assert not any(
        name.startswith("thor_upstream") for name, _ in parse(Metrics().render().decode())
    )


def test_upstream_labels_are_escaped() -> None:
    assert upstream_labels('/a"b', "http://h\\x\n") == 'route="/a\\"b",upstream="http://h\\\\x\\n"'


def test_proxy_members_in_metrics(start_gateway: Any, tmp_path: Any) -> None:
    backend = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0")
    dead = f"http://127.0.0.1:{refused_port()}"
    config = tmp_path / "proxy.toml"
    config.write_text(
        f'[[proxy]]\nprefix = "/api"\nupstreams = ["{backend.url}", "{dead}"]\nmax_fails = 1\n'
    )
    gateway = start_gateway("-c", str(config), "-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0")
    with requests.Session() as session:
        for _ in range(6):
            assert session.get(gateway.url + "/api/x", timeout=10).status_code == 200
    text = requests.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10).text
    samples = parse(text)
    live, refused = upstream_labels("/api", backend.url), upstream_labels("/api", dead)
    assert samples[("thor_upstream_requests_total", live)] == 6  # every request ended there
    assert samples[("thor_upstream_failures_total", live)] == 0
    assert samples[("thor_upstream_in_service", live)] == 1
    assert samples[("thor_upstream_in_flight", live)] == 0
    # Tried once (then retried on the live member), failed, and ejected (max_fails = 1).
    assert samples[("thor_upstream_requests_total", refused)] == 1
    assert samples[("thor_upstream_failures_total", refused)] == 1
    assert samples[("thor_upstream_in_service", refused)] == 0
    assert gateway.stop() == 0


def test_metrics_endpoint(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0")
    with requests.Session() as session:
        for _ in range(5):
            session.get(gateway.url + "/m", timeout=10)
        session.post(gateway.url + "/m", data=b"x" * 1000, timeout=10)
        session.get(gateway.url + "/nothing-here/../count", timeout=10)
        metrics_url = f"http://127.0.0.1:{gateway.metrics_port}"
        response = session.get(metrics_url + "/metrics", timeout=10)
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        samples = parse(response.text)
        assert samples[("thor_requests_total", 'status="2xx"')] == 7
        assert samples[("thor_request_body_bytes_total", "")] == 1000
        assert samples[("thor_requests_in_flight", "")] == 0
        assert samples[("thor_connections", "")] == 1  # the session's keep-alive connection
        assert samples[("thor_draining", "")] == 0
        assert session.get(metrics_url + "/readyz", timeout=10).status_code == 200
        assert session.get(metrics_url + "/other", timeout=10).status_code == 404
        # The metrics listener does not count its own scrapes.
        again = parse(session.get(metrics_url + "/metrics", timeout=10).text)
        assert again[("thor_requests_total", 'status="2xx"')] == 7


def test_metrics_add_up_over_workers(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "-w", "2", "--metrics-bind", "127.0.0.1:0"
    )
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    pids = set()
    for _ in range(30):
        with requests.Session() as session:  # new connections: both workers serve
            pids.add(session.get(gateway.url + "/w", timeout=10).json()["pid"])
    metrics_url = f"http://127.0.0.1:{gateway.metrics_port}/metrics"

    def counted() -> bool:
        samples = parse(requests.get(metrics_url, timeout=10).text)
        return samples[("thor_requests_total", 'status="2xx"')] == 30

    poll(counted, 10, "every worker's requests in the sum")
    assert len(pids) == 2
    # A recycled or dead worker's requests stay counted.
    victim = pids.pop()
    os.kill(victim, signal.SIGTERM)
    gateway.wait_for_line(rf"worker {victim} exited")
    for _ in range(5):
        samples = parse(requests.get(metrics_url, timeout=10).text)
        assert samples[("thor_requests_total", 'status="2xx"')] == 30
    assert gateway.stop() == 0
