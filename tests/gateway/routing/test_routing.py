"""The router on a real HttpServer (in-process): matching, Request fields, limits, hooks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import thor.loop
from thor.http.server import HttpServer
from thor_gateway.operations.metrics import Metrics
from thor_gateway.routing.forwarded import ProxyTrust
from thor_gateway.routing.request import Request, target_authority, with_host
from thor_gateway.routing.router import Route, Router, split_target


class Recorder:
    """A handler that answers with its name and keeps the Requests it got."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.requests: list[Request] = []

    def handle(self, exchange: Any, request: Request) -> None:
        self.requests.append(request)
        body = self.name.encode()

        def answer() -> None:
            exchange.response_start(200, "OK", [(b"Content-Length", str(len(body)).encode())])
            exchange.response_body(body)
            exchange.response_done([])

        def done(trailers: Any) -> None:
            if self.delay:
                exchange.loop.schedule(self.delay, answer)
            else:
                answer()

        exchange.once("request_done", done)

    def startup(self, done: Any) -> None:
        done(None)

    def shutdown(self, done: Any) -> None:
        done(None)


class Served:
    def __init__(self, router: Router) -> None:
        self.loop = thor.loop.make()
        self.router = router
        self.server = HttpServer("127.0.0.1", 0, loop=self.loop)
        self.server.on("exchange", router.on_exchange)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        def stop() -> None:
            self.server.shutdown()
            for conn in list(self.server.connections):
                conn.abort(None)
            self.loop.stop()

        self.loop.run_in_loop(stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Served] = []

    def start(router: Router) -> Served:
        served = Served(router)
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


def test_split_target() -> None:
    assert split_target(b"/a/b?x=1&y") == (b"/a/b", b"x=1&y")
    assert split_target(b"http://example.com/p?q") == (b"/p", b"q")
    assert split_target(b"HTTPS://example.com") == (b"/", b"")


def test_target_authority_and_with_host() -> None:
    assert target_authority(b"http://example.com:8080/p?q") == b"example.com:8080"
    assert target_authority(b"HTTPS://[::1]?q") == b"[::1]"
    assert target_authority(b"http://h") == b"h"
    assert target_authority(b"/p") is None
    assert target_authority(b"example.com:443") is None
    assert with_host([(b"A", b"1"), (b"host", b"x")], b"h") == [(b"A", b"1"), (b"host", b"h")]
    assert with_host([(b"A", b"1")], b"h") == [(b"Host", b"h"), (b"A", b"1")]


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_absolute_form_target_names_the_host(serve: Any, version: bytes) -> None:
    """RFC 9112 §3.2.2: the server ignores Host and uses the target's authority."""
    app = Recorder("app")
    served = serve(Router([Route(b"/api", app)]))
    host = b"Host: other.example\r\n" if version == b"1.1" else b""
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=5) as sock:
        sock.sendall(
            b"GET http://wanted.example:81/api/x?q=1 HTTP/" + version + b"\r\n" + host + b"\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    request = app.requests[0]
    assert (request.raw_path, request.query, request.path_info) == (b"/api/x", b"q=1", b"/x")
    hosts = [v for n, v in request.headers if n.lower() == b"host"]
    assert hosts == [b"wanted.example:81"]


def test_match_at_segment_boundaries() -> None:
    a, ab, root = Route(b"/a", "a"), Route(b"/a/b", "ab"), Route(b"", "root")
    router = Router([a, root, ab])
    assert router.match(b"/a") is a
    assert router.match(b"/a/") is a
    assert router.match(b"/ab") is root
    assert router.match(b"/a/b") is ab
    assert router.match(b"/a/bc") is a
    assert router.match(b"/a/b/c") is ab
    assert Router([a]).match(b"/b") is None


def test_request_fields(serve: Any) -> None:
    api = Recorder("api")
    served = serve(Router([Route(b"/api", api)], root_path=b"/r"))
    response = requests.get(served.url + "/api/a%20b/%2F?x=1", timeout=5)
    assert response.text == "api"
    request = api.requests[0]
    assert request.method == b"GET"
    assert request.target == b"/api/a%20b/%2F?x=1"
    assert request.raw_path == b"/api/a%20b/%2F"
    assert request.query == b"x=1"
    assert (request.script_name, request.path_info) == (b"/r/api", b"/a b//")
    assert request.http_version == b"1.1"
    assert request.scheme == "http"
    assert request.client is not None
    assert request.client[0] == "127.0.0.1"
    assert request.server == ("127.0.0.1", int(served.url.rsplit(":", 1)[1]))


def test_trusted_forwarded_headers_reach_the_request(serve: Any) -> None:
    app = Recorder("app")
    served = serve(Router([Route(b"", app)], trust=ProxyTrust(["127.0.0.1"])))
    requests.get(
        served.url + "/",
        headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https;host=example.com'},
        timeout=5,
    )
    request = app.requests[0]
    assert request.client == ("2001:db8::1", 4711)
    assert request.scheme == "https"
    assert (b"host", b"example.com") in [(n.lower(), v) for n, v in request.headers]


def test_limit_concurrency_answers_503(serve: Any) -> None:
    slow = Recorder("slow", delay=1.0)
    served = serve(Router([Route(b"", slow)], limit_concurrency=1))
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(requests.get(served.url + "/", timeout=5).status_code)
    )
    first.start()
    deadline = time.monotonic() + 5
    while not slow.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    second = requests.get(served.url + "/", timeout=5)
    first.join(10)
    assert second.status_code == 503
    assert second.headers["Retry-After"] == "1"
    assert results == [200]
    assert len(slow.requests) == 1


def test_health_ready_and_draining(serve: Any) -> None:
    router = Router([Route(b"", Recorder("app"))])
    served = serve(router)
    assert requests.get(served.url + "/readyz", timeout=5).status_code == 200
    router.draining = True
    assert requests.get(served.url + "/readyz", timeout=5).status_code == 503
    assert requests.get(served.url + "/healthz", timeout=5).status_code == 200


def test_max_requests_hook_and_metrics(serve: Any) -> None:
    fired: list[int] = []
    metrics = Metrics()
    router = Router(
        [Route(b"", Recorder("app"))],
        metrics=metrics,
        max_requests=3,
        on_max_requests=lambda: fired.append(1),
    )
    served = serve(router)
    with requests.Session() as session:
        for _ in range(4):
            assert session.get(served.url + "/x", timeout=5).status_code == 200
    deadline = time.monotonic() + 5
    while metrics.requests["2xx"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fired == [1]
    assert metrics.requests["2xx"] == 4
    assert metrics.in_flight == 0
    assert metrics.bytes_sent == 12


def test_unknown_path_without_root_is_404_and_keeps_the_connection(serve: Any) -> None:
    served = serve(Router([Route(b"/only", Recorder("only"))]))
    with requests.Session() as session:
        missing = session.post(served.url + "/other", data=b"x" * 10_000, timeout=5)
        assert missing.status_code == 404
        assert missing.headers.get("Connection") != "close"
        assert session.get(served.url + "/only/x", timeout=5).text == "only"
