"""A native Thor app's WebSockets under thor-gateway (apps/ws_echo.py, which calls
``thor.websocket.accept`` itself): closed with 1001 when the graceful timeout of a SIGTERM
or a SIGHUP ends, a peer that never answers the close does not hold the worker, and they
are counted in /metrics and logged at close, as an ASGI app's are. Real processes, real
signals, the ``websockets`` client (or a raw socket where the peer must misbehave)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.gateway_helpers import Gateway, poll

pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ECHO = "apps.ws_echo:handler"


def ws_url(gateway: Gateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/"


def assert_closed_with_1001(ws: Any) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(10)
    assert closed.value.rcvd is not None, "a close frame, not a cut connection"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutting down")


def test_sigterm_closes_open_native_websockets_with_1001_after_the_graceful_timeout() -> None:
    gateway = Gateway(ECHO, "--port", "0", "--graceful-timeout", "1").wait_ready()
    try:
        with connect(ws_url(gateway), open_timeout=5) as ws:
            ws.send("before")
            assert ws.recv(5) == "before"
            signalled = time.monotonic()
            gateway.signal(signal.SIGTERM)
            gateway.wait_for_line("draining")
            ws.send("while draining")  # still served until the graceful timeout ends
            assert ws.recv(5) == "while draining"
            assert_closed_with_1001(ws)
            assert time.monotonic() - signalled >= 0.9, "closed before the graceful timeout"
        assert gateway.wait(20) == 0
        gateway.wait_for_line("closing 1 open WebSockets")
    finally:
        gateway.close()


def test_sighup_closes_the_old_workers_native_websockets_and_new_ones_are_served() -> None:
    # Two workers: one is a single process, which SIGHUP does not replace.
    gateway = Gateway(ECHO, "--port", "0", "--workers", "2", "--graceful-timeout", "0.5")
    gateway.wait_ready()
    try:
        poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
        with connect(ws_url(gateway), open_timeout=5) as old:
            old.send("old")
            assert old.recv(5) == "old"
            gateway.signal(signal.SIGHUP)
            assert_closed_with_1001(old)
        gateway.wait_for_line("closing 1 open WebSockets")
        poll(lambda: gateway.count_lines(r"worker \d+ exited") >= 2, 20, "the old workers to go")
        with connect(ws_url(gateway), open_timeout=5) as new:
            new.send("new")
            assert new.recv(5) == "new"
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    finally:
        gateway.close()


def open_raw_websocket(port: int) -> socket.socket:
    """A handshake by hand, for a peer that then never reads nor answers the close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def test_a_peer_that_never_answers_the_close_does_not_hold_the_worker() -> None:
    gateway = Gateway(
        ECHO, "--port", "0", "--graceful-timeout", "0.3", "--ws-close-timeout", "0.5"
    ).wait_ready()
    try:
        silent = open_raw_websocket(gateway.port)
        with silent:
            started = time.monotonic()
            gateway.signal(signal.SIGTERM)
            assert gateway.wait(10) == 0
            # (the log says where the time went, should it ever be exceeded: it was once,
            # 5.8 s, in a full parallel run, and never in 30 runs alone or under load)
            assert time.monotonic() - started < 5, gateway.log
            gateway.wait_for_line("cutting 1 WebSockets left open")
            # What it was sent before the cut: a close frame, 1001.
            data = b""
            while len(data) < 24:
                chunk = silent.recv(4096)
                if not chunk:
                    break
                data += chunk
            # FIN + close, 22 bytes: 1001 and the reason (RFC 6455 §5.5.1)
            assert data == b"\x88\x16\x03\xe9server shutting down", data
    finally:
        gateway.close()


def test_metrics_count_native_websockets_and_the_access_log_has_a_line_at_close(
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
        "%(s)s %(r)s %({x-websocket-close}o)s",
    ).wait_ready()
    try:
        metrics = f"http://127.0.0.1:{gateway.metrics_port}/metrics"
        with connect(ws_url(gateway), open_timeout=5) as ws:
            ws.send("x")
            assert ws.recv(5) == "x"
            with urllib.request.urlopen(metrics, timeout=5) as response:
                assert "thor_websockets_open 1" in response.read().decode()
        poll(lambda: _close_lines(log_file), what="the access log line at close")
        with urllib.request.urlopen(metrics, timeout=5) as response:
            assert "thor_websockets_open 0" in response.read().decode()
    finally:
        gateway.stop()
    assert _close_lines(log_file) == ["101 GET / HTTP/1.1 1000"]


def _close_lines(path: Path) -> list[str]:
    """Access log lines of WebSocket closes (those with a close code)."""
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if not line.endswith(" -")]
