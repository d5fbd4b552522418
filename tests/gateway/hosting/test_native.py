"""Native Thor apps behind NativeHandler: the app sees request_start as if it were alone."""

from __future__ import annotations

from typing import Any

import requests

from thor_gateway.hosting.native import NativeHandler


def echo_app(exchange: Any) -> None:
    """A Thor 0.17-style app: listens for the request, echoes the body."""
    seen: dict[str, Any] = {}
    body: list[bytes] = []

    def request_start(method: bytes, uri: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        seen["method"], seen["uri"] = method, uri

    def request_done(trailers: Any) -> None:
        payload = b"%s %s %s" % (seen["method"], seen["uri"], b"".join(body))
        exchange.response_start(200, b"OK", [(b"Content-Type", b"text/plain")])
        exchange.response_body(payload)
        exchange.response_done([])

    exchange.on("request_start", request_start)
    exchange.on("request_body", body.append)
    exchange.on("request_done", request_done)


def test_native_app_sees_the_request(live_server: Any) -> None:
    live = live_server()
    live.mount(NativeHandler(echo_app), b"/native")
    response = requests.post(live.url + "/native/a%20b?x=1", data=b"payload", timeout=5)
    assert response.status_code == 200
    assert response.text == "POST /native/a%20b?x=1 payload"


def test_native_app_keep_alive(live_server: Any) -> None:
    live = live_server()
    live.mount(NativeHandler(echo_app))
    with requests.Session() as session:
        for i in range(5):
            assert session.get(live.url + f"/{i}", timeout=5).text == f"GET /{i} "


def test_native_startup_and_shutdown_are_immediate() -> None:
    handler = NativeHandler(echo_app)
    outcomes: list[Any] = []
    handler.startup(outcomes.append)
    handler.shutdown(outcomes.append)
    assert outcomes == [None, None]
