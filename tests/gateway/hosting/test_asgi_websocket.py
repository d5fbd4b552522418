"""The gateway's ASGI ``websocket`` scope end to end: thor-gateway in a subprocess, the
``websockets`` library (sync client) as the peer, Starlette and FastAPI endpoints unchanged."""

from __future__ import annotations

import json
import signal
import socket
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.gateway_helpers import Gateway, poll

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

ECHO = "tests.websocket.asgi_echo:app"


@pytest.fixture(scope="module")
def echo_gateway() -> Iterator[Gateway]:
    gateway = Gateway(ECHO, "--port", "0", "--ws-max-size", "64k").wait_ready()
    yield gateway
    gateway.stop()


def ws_url(gateway: Gateway, path: str) -> str:
    return f"ws://127.0.0.1:{gateway.port}{path}"


def test_echo_text_and_bytes(echo_gateway: Gateway) -> None:
    with connect(ws_url(echo_gateway, "/echo"), open_timeout=5) as ws:
        ws.send("héllo")
        assert ws.recv(5) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(5) == b"\x00\xff" * 1000
        assert ws.response.headers.get("Sec-WebSocket-Extensions", "").startswith(
            "permessage-deflate"
        )


def test_subprotocol_and_headers_from_accept(echo_gateway: Gateway) -> None:
    with connect(ws_url(echo_gateway, "/proto"), subprotocols=["x", "chat"], open_timeout=5) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["x-thor"] == "1"
        assert ws.recv(5) == "['x', 'chat']"  # the scope's subprotocols, in offer order


def test_close_with_code_and_reason(echo_gateway: Gateway) -> None:
    with (
        connect(ws_url(echo_gateway, "/bye"), open_timeout=5) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [("/deny", 418, b"nope"), ("/close", 403, None), ("/boom", 500, None)],
)
def test_refusals_are_http_responses(
    echo_gateway: Gateway, path: str, status: int, body: bytes | None
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(echo_gateway, path), open_timeout=5)
    assert refused.value.response.status_code == status
    if body is not None:
        assert refused.value.response.body == body


def test_a_message_over_ws_max_size_is_1009(echo_gateway: Gateway) -> None:
    with connect(ws_url(echo_gateway, "/echo"), open_timeout=5, compression=None) as ws:
        ws.send(b"x" * 70_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_a_bad_handshake_never_reaches_the_app(echo_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", echo_gateway.port), timeout=5) as sock:
        sock.sendall(
            b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"Sec-WebSocket-Version: 13" in answer


def test_starlette_endpoint_and_disconnect_code() -> None:
    pytest.importorskip("starlette")
    gateway = Gateway("tests.gateway.websocket_apps:starlette_app", "--port", "0").wait_ready()
    try:
        with connect(ws_url(gateway, "/ws"), subprotocols=["chat"], open_timeout=5) as ws:
            assert ws.subprotocol == "chat"
            ws.send("hi")
            assert ws.recv(5) == "starlette: hi"
            ws.send(b"raw")
            assert ws.recv(5) == b"raw"
            ws.close(4002)
        # An abrupt end is 1006 to the app: a raw handshake, then a reset.
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert_line(gateway, "starlette disconnect 4002")
        assert_line(gateway, "starlette disconnect 1006")
    finally:
        gateway.stop()


def assert_line(gateway: Gateway, text: str, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in gateway.stdout:
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in {gateway.stdout}")


def test_fastapi_endpoint() -> None:
    pytest.importorskip("fastapi")
    gateway = Gateway("tests.gateway.websocket_fastapi:app", "--port", "0").wait_ready()
    try:
        with connect(ws_url(gateway, "/ws/thor"), open_timeout=5) as ws:
            ws.send("hello")
            assert json.loads(ws.recv(5)) == {"name": "thor", "text": "hello"}
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "done")
    finally:
        gateway.stop()


def test_a_wsgi_route_refuses_websocket_with_403_and_says_why() -> None:
    gateway = Gateway("tests.gateway.websocket_apps:wsgi_app", "--port", "0").wait_ready()
    try:
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(gateway, "/chat"), open_timeout=5)
        assert refused.value.response.status_code == 403
        assert b"WSGI apps cannot serve WebSocket" in refused.value.response.body
        gateway.wait_for_line("WebSocket handshake for /chat refused: WSGI apps cannot serve")
    finally:
        gateway.stop()


def test_shutdown_closes_open_websockets_with_1001() -> None:
    gateway = Gateway(ECHO, "--port", "0", "--graceful-timeout", "0.5").wait_ready()
    try:
        with connect(ws_url(gateway, "/echo"), open_timeout=5) as ws:
            ws.send("before")
            assert ws.recv(5) == "before"
            gateway.signal(signal.SIGTERM)
            gateway.wait_for_line("draining")
            ws.send("while draining")  # still served until the graceful timeout
            assert ws.recv(5) == "while draining"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        assert gateway.wait(20) == 0
        gateway.wait_for_line("closing 1 open WebSockets")
    finally:
        gateway.close()


def test_metrics_count_open_websockets_and_the_access_log_has_a_line_at_close(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "access.log"
    gateway = Gateway(
        ECHO,
        "--port",
        "0",
        "--metrics-bind",
        "127.0.0.1:0",
        "--access-logfile",
        str(log_file),
        "--access-logformat",
        "%(s)s %(r)s %(b)s %({x-websocket-close}o)s %({x-websocket-received}o)s",
    ).wait_ready()
    try:
        metrics = f"http://127.0.0.1:{gateway.metrics_port}/metrics"
        with connect(ws_url(gateway, "/echo"), open_timeout=5, compression=None) as ws:
            ws.send("x" * 100)
            assert ws.recv(5) == "x" * 100
            with urllib.request.urlopen(metrics, timeout=5) as response:
                assert "thor_websockets_open 1" in response.read().decode()
        poll(lambda: _close_lines(log_file), what="the access log line at close")
        with urllib.request.urlopen(metrics, timeout=5) as response:
            assert "thor_websockets_open 0" in response.read().decode()
    finally:
        gateway.stop()
    [line] = _close_lines(log_file)
    status, _, _, _, sent, code, received = line.split(" ")
    assert (status, code) == ("101", "1000")
    assert int(sent) >= 102  # the echo's frame and the close frame
    assert int(received) >= 106 + 8  # the masked message and close frames


def _close_lines(path: Path) -> list[str]:
    """Access log lines of WebSocket closes (those with a close code)."""
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if not line.endswith(" - -")]
