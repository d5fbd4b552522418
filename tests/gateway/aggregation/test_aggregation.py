"""Fan-out aggregation: concurrency, per-call and overall deadlines, partial results."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

import thor.loop
from thor.http.server import HttpServer
from thor.testing import run_for
from thor_gateway.aggregation import (
    Aggregator,
    Call,
    DeadlineError,
    Result,
    client_for,
    fan_out,
    merge_json,
)
from thor_gateway.aggregation.blocking import BlockingClient


def backend(loop: thor.loop.Loop) -> HttpServer:
    """JSON services on ``loop``: /a /b /c answer at once, /slow/N after N ms, /fail 500,
    /big/N N bytes, /drop closes without answering."""
    server = HttpServer("127.0.0.1", 0, loop=loop)

    def on_exchange(ex: Any) -> None:
        def start(method: bytes, uri: bytes, headers: Any) -> None:
            parts = uri.decode().strip("/").split("/")
            if parts[0] == "slow":
                loop.schedule(int(parts[1]) / 1000, answer, 200, {"slow": int(parts[1])})
            elif parts[0] == "fail":
                answer(500, {"error": True})
            elif parts[0] == "big":
                ex.response_start(200, b"OK", [(b"Content-Length", parts[1].encode())])
                ex.response_body(b"x" * int(parts[1]))
                ex.response_done([])
            elif parts[0] == "drop":
                ex.abort()
            else:
                answer(200, {parts[0]: len(parts[0])})

        def answer(status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            ex.response_start(status, b"X", [(b"Content-Type", b"application/json")])
            ex.response_body(body)
            ex.response_done([])

        ex.on("request_start", start)

    server.on("exchange", on_exchange)
    return server


@pytest.fixture
def services(loop: thor.loop.Loop) -> Iterator[str]:
    server = backend(loop)
    yield f"http://127.0.0.1:{server.port}"
    client_for(loop).close()
    server.shutdown()


def run_fan_out(loop: thor.loop.Loop, calls: Any, **kwargs: Any) -> tuple[dict[str, Result], float]:
    out: list[dict[str, Result]] = []
    started = loop.time()

    def done(results: dict[str, Result]) -> None:
        out.append(results)
        loop.stop()

    fan_out(calls, done, loop=loop, **kwargs)
    run_for(loop, 5)
    return out[0], loop.time() - started


def test_calls_run_concurrently_and_merge(loop: thor.loop.Loop, services: str) -> None:
    calls = {name: Call(f"{services}/slow/200") for name in ("x", "y", "z")}
    calls["a"] = Call(f"{services}/a")
    results, elapsed = run_fan_out(loop, calls)
    assert list(results) == ["x", "y", "z", "a"]
    assert all(r.ok for r in results.values())
    assert elapsed < 0.5  # four calls, the slowest 200 ms: concurrent, not 600+ ms
    assert merge_json(results.values()) == {"slow": 200, "a": 1}
    assert results["a"].header(b"content-type") == b"application/json"


def test_partial_results_with_per_call_and_overall_deadlines(
    loop: thor.loop.Loop, services: str
) -> None:
    calls = {
        "fast": f"{services}/bb",
        "slow_call": Call(f"{services}/slow/2000", timeout=0.1),
        "slow_overall": Call(f"{services}/slow/2000"),
        "fail": f"{services}/fail",
        "drop": f"{services}/drop",
        "refused": "http://127.0.0.1:1/x",
        "big": Call(f"{services}/big/5000", max_body=1000),
    }
    streamed: list[str] = []
    results, elapsed = run_fan_out(
        loop, calls, deadline=0.4, on_result=lambda r: streamed.append(r.name)
    )
    assert 0.35 < elapsed < 1.5
    assert results["fast"].ok
    assert results["fast"].json() == {"bb": 2}
    assert isinstance(results["slow_call"].error, DeadlineError)
    assert results["slow_call"].elapsed < 0.3
    assert isinstance(results["slow_overall"].error, DeadlineError)
    assert results["fail"].status == 500
    assert not results["fail"].ok
    assert results["drop"].error is not None
    assert results["refused"].error is not None
    assert results["big"].error is not None
    assert results["big"].status == 0
    assert sorted(streamed) == sorted(calls)
    assert streamed[-1] == "slow_overall"  # the last to end, at the deadline
    assert merge_json(results.values()) == {"bb": 2}


def test_empty_fan_out_finishes(loop: thor.loop.Loop) -> None:
    results, _ = run_fan_out(loop, {})
    assert results == {}


def test_aggregator_handler_assembled_and_streamed(live_server: Callable[..., Any]) -> None:
    live = live_server()
    services = backend(live.loop)  # created off the loop thread, before it serves anything
    base = f"http://127.0.0.1:{services.port}"

    def calls(request: Any) -> dict[str, Call | str]:
        return {p: f"{base}/{p}" for p in ("a", "bb", "ccc")}

    live.mount(Aggregator(calls, deadline=2.0))
    assert requests.get(live.url + "/", timeout=10).json() == {"a": 1, "bb": 2, "ccc": 3}

    strict = Aggregator(lambda r: {"a": f"{base}/a", "f": f"{base}/fail"}, require_all=True)
    live.mount(strict)
    response = requests.get(live.url + "/", timeout=10)
    assert response.status_code == 502
    assert response.json()["failed"] == ["f"]

    live.mount(Aggregator(lambda r: {"s": f"{base}/slow/100", "a": f"{base}/a"}, stream=True))
    response = requests.get(live.url + "/", timeout=10)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["name"] for line in lines] == ["a", "s"]  # as they complete
    assert lines[1]["body"] == {"slow": 100}
    live.call(client_for(live.loop).close)
    live.call(services.shutdown)


def test_blocking_client_from_threads(live_server: Callable[..., Any]) -> None:
    live = live_server()
    services = backend(live.loop)
    base = f"http://127.0.0.1:{services.port}"
    blocking = BlockingClient(live.loop)
    outcomes: list[Any] = []

    def worker() -> None:
        results = blocking.fan_out({"a": f"{base}/a", "s": f"{base}/slow/150"}, deadline=2)
        outcomes.append(merge_json(results.values()))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes == [{"a": 1, "slow": 150}] * 8
    single = blocking.fetch(f"{base}/slow/500", timeout=0.1)
    assert isinstance(single.error, DeadlineError)
    assert blocking.fetch(f"{base}/bb").json() == {"bb": 2}
    # from the loop thread it would wait for itself: refused
    with pytest.raises(RuntimeError, match="loop thread"):
        live.call(blocking.fetch, f"{base}/a")
    live.call(client_for(live.loop).close)
    live.call(services.shutdown)


def test_client_leaving_cancels_the_fan_out(live_server: Callable[..., Any]) -> None:
    import socket

    from tests.gateway.proxy_support import raw_upstream, wait_for

    closed = threading.Event()

    def slow(sock: socket.socket, head: bytes) -> None:
        sock.settimeout(5)
        if sock.recv(1) == b"":
            closed.set()

    with raw_upstream(slow) as up:
        live = live_server()
        live.mount(Aggregator(lambda r: {"slow": up.url + "/x"}, deadline=5.0))
        client = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: len(up.heads) == 1)
        client.close()
        assert closed.wait(5), "the backend call was not cancelled"
        live.call(client_for(live.loop).close)


def test_result_json_reads_utf8_with_or_without_a_bom() -> None:
    assert Result("x", body='{"é": 1}'.encode()).json() == {"é": 1}
    assert Result("x", body=b'\xef\xbb\xbf{"a": 1}').json() == {"a": 1}
    with pytest.raises(ValueError):  # JSONDecodeError and UnicodeDecodeError are both
        Result("x", body=b"\xff{").json()
