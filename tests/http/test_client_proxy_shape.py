"""The client in the place it was built for: behind a Thor HttpServer, as a streaming proxy.

A real client (``requests``, in a thread) uploads 8 MiB through a minimal proxy (HttpServer +
HttpClient, wired as docs/http-client.md "Backpressure" says) to a Thor backend that answers
with 8 MiB; the backend reads the upload late and the test client reads the answer late, so
that the proxy has to pause in both directions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import thor.loop
from thor.http.client import HttpClient, HttpClientExchange
from thor.http.headers import strip_hop_by_hop
from thor.http.server import HttpServer

from .client_support import run_until

SIZE = 8 * 1024 * 1024
BLOCK = b"z" * (256 * 1024)


def backend_app(server: HttpServer, got: list[int]) -> None:
    def on_exchange(ex: Any) -> None:
        received = [0]
        paused = [False]
        sent = [0]

        def pump() -> None:
            while sent[0] < SIZE and not paused[0]:
                ex.response_body(BLOCK)
                sent[0] += len(BLOCK)
            if sent[0] >= SIZE and not paused[0]:
                sent[0] += 1  # done once
                ex.response_done([])

        def on_pause(value: bool) -> None:
            paused[0] = value
            if not value:
                pump()

        def done(trailers: object) -> None:
            got.append(received[0])
            ex.response_start(200, b"OK", [(b"Content-Length", b"%d" % SIZE)])
            pump()

        def start(method: bytes, uri: bytes, headers: object) -> None:
            # Slow to read the upload at first: the proxy's client exchange must pause.
            ex.pause_request_body(True)
            server.loop.schedule(0.3, ex.pause_request_body, False)

        ex.on("request_start", start)
        ex.on("request_body", lambda chunk: received.__setitem__(0, received[0] + len(chunk)))
        ex.on("request_done", done)
        ex.on("pause", on_pause)

    server.on("exchange", on_exchange)


def proxy_app(server: HttpServer, client: HttpClient, backend_port: int, seen: dict) -> None:
    def on_exchange(ex: Any) -> None:
        cx: HttpClientExchange = client.exchange()

        def request_start(method: bytes, uri: bytes, headers: list) -> None:
            cx.request_start(method, b"http://127.0.0.1:%d%s" % (backend_port, uri), headers)

        def upstream_pause(paused: bool) -> None:  # the backend is not reading the upload
            seen["upload_paused"] += paused
            ex.pause_request_body(paused)

        def client_pause(paused: bool) -> None:  # our client is not reading the download
            seen["download_paused"] += paused
            cx.res_body_pause(paused)

        def response_start(status: bytes, phrase: bytes, headers: list) -> None:
            ex.response_start(int(status), phrase, strip_hop_by_hop(headers))

        ex.on("request_start", request_start)
        ex.on("request_body", cx.request_body)
        ex.on("request_done", cx.request_done)
        ex.on("pause", client_pause)
        cx.on("pause", upstream_pause)
        cx.on("response_start", response_start)
        cx.on("response_body", ex.response_body)
        cx.on("response_done", ex.response_done)
        cx.on("error", lambda err: seen["errors"].append(err))

    server.on("exchange", on_exchange)


@pytest.fixture
def servers(loop: thor.loop.Loop) -> Iterator[tuple[HttpServer, HttpServer, HttpClient]]:
    backend = HttpServer("127.0.0.1", 0, loop)
    front = HttpServer("127.0.0.1", 0, loop)
    client = HttpClient(loop)
    yield backend, front, client
    client.close()
    for server in (front, backend):
        server.shutdown()
        for conn in list(server.connections):
            conn.tcp_conn.abort()


def test_streaming_proxy_with_backpressure_both_ways(
    loop: thor.loop.Loop, servers: tuple[HttpServer, HttpServer, HttpClient]
) -> None:
    backend, front, client = servers
    got: list[int] = []
    seen: dict[str, Any] = {"upload_paused": 0, "download_paused": 0, "errors": []}
    backend_app(backend, got)
    proxy_app(front, client, backend.port, seen)
    outcome: dict[str, Any] = {}

    def upload() -> Iterator[bytes]:
        for _ in range(SIZE // len(BLOCK)):
            yield BLOCK

    def user() -> None:
        try:
            with requests.post(
                f"http://127.0.0.1:{front.port}/up", data=upload(), stream=True, timeout=30
            ) as response:
                time.sleep(0.5)  # not reading yet: every hop must hold back
                outcome["status"] = response.status_code
                outcome["size"] = sum(len(c) for c in response.iter_content(1 << 20))
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=user)
    thread.start()
    try:
        run_until(loop, lambda: not thread.is_alive(), 60)
    finally:
        thread.join(10)
    assert outcome == {"status": 200, "size": SIZE}
    assert got == [SIZE]
    assert seen["errors"] == []
    assert seen["upload_paused"] >= 1  # the slow backend made the proxy's client pause
    assert seen["download_paused"] >= 1  # the slow reader made the proxy stop reading
