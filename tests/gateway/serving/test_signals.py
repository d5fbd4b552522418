"""Signals under load: SIGTERM/SIGINT drain without losing a request; SIGHUP with workers."""

from __future__ import annotations

import signal
import socket
import time
from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import Load, poll, statuses

APPS = "tests.gateway.gateway_apps"


@pytest.mark.parametrize(
    ("signum", "app"),
    [
        (signal.SIGTERM, f"{APPS}:info"),
        (signal.SIGINT, f"{APPS}:info"),
        (signal.SIGTERM, "apps.hello_asgi:app"),
        (signal.SIGTERM, "apps.hello_thor:handler"),
    ],
    ids=["TERM-wsgi", "INT-wsgi", "TERM-asgi", "TERM-native"],
)
def test_stop_under_load_loses_nothing(start_gateway: Any, signum: int, app: str) -> None:
    gateway = start_gateway(app, "-b", "127.0.0.1:0", "--graceful-timeout", "10")
    with Load(gateway.port, "/load?sleep=0.02", threads=8, seconds=20) as load:
        load.wait_ok(50)
        load.server_told_to_stop()
        gateway.signal(signum)
        assert gateway.wait(20) == 0
        poll(lambda: load.refused > 0 or load.stopping.is_set(), 5, "clients to notice")
    assert load.failures == [], load.failures
    assert load.ok >= 50
    assert "draining" in gateway.log
    with pytest.raises(requests.ConnectionError):
        requests.get(gateway.url + "/", timeout=5)


def test_in_flight_request_finishes_with_connection_close(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--metrics-bind",
        "127.0.0.1:0",
        "--graceful-timeout",
        "10",
    )
    idle = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    idle.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    slow = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    slow.sendall(b"GET /slow?sleep=1.5 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.3)  # let the request reach the app (it then sleeps 1.5 s)
    gateway.signal(signal.SIGTERM)
    gateway.wait_for_line("draining")
    # Readiness fails while draining, on the metrics listener that stays up.
    ready = requests.get(f"http://127.0.0.1:{gateway.metrics_port}/readyz", timeout=5)
    assert ready.status_code == 503
    # The idle keep-alive connection's next request is answered, with Connection: close
    # (closing it at once would lose a request sent at that moment: issue 16, point 3).
    idle.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    idle.settimeout(5)
    following = b""
    while chunk := idle.recv(65536):
        following += chunk
    assert statuses(following) == [200]
    assert b"\r\nConnection: close\r\n" in following
    # A new connection is refused, not accepted and dropped.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", gateway.port), timeout=5).close()
    answer = b""
    slow.settimeout(10)
    while chunk := slow.recv(65536):
        answer += chunk
    assert statuses(answer) == [200]
    assert b"\r\nConnection: close\r\n" in answer
    assert gateway.wait(20) == 0
    idle.close()
    slow.close()


def test_requests_waiting_in_the_backlog_are_served(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "--graceful-timeout", "10")
    gateway.signal(signal.SIGSTOP)  # nothing is accepted: new connections wait in the queue
    try:
        waiting = []
        for i in range(5):
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
            sock.sendall(b"GET /queued/%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            waiting.append(sock)
        gateway.signal(signal.SIGTERM)
    finally:
        gateway.signal(signal.SIGCONT)
    for sock in waiting:
        answer = b""
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        assert statuses(answer) == [200], answer
    assert gateway.wait(20) == 0


def test_graceful_timeout_cuts_what_is_left(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "--graceful-timeout", "0.5")
    slow = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    slow.sendall(b"GET /slow?sleep=5 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.3)
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(10) == 0
    assert time.monotonic() - started < 4
    slow.close()


def test_sighup_replaces_workers_without_refusing(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "--workers", "2", "--graceful-timeout", "10"
    )
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    with Load(gateway.port, "/hup?sleep=0.01", threads=8, seconds=30) as load:
        load.wait_ok(50)
        gateway.signal(signal.SIGHUP)
        poll(lambda: gateway.count_lines(r"worker \d+ exited") >= 2, 20, "the old workers to go")
        poll(lambda: gateway.count_lines("is listening") >= 4, 20, "two new workers")
        served = load.ok
        load.wait_ok(served + 50)
    assert load.failures == [], load.failures
    assert load.refused == 0
    pids = {requests.get(gateway.url + "/pid", timeout=5).json()["pid"] for _ in range(20)}
    assert pids, "still serving"
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(20) == 0


def test_sigterm_to_master_drains_workers_under_load(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "--workers", "2", "--graceful-timeout", "10"
    )
    with Load(gateway.port, "/w?sleep=0.02", threads=8, seconds=20) as load:
        load.wait_ok(50)
        load.server_told_to_stop()
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    assert load.failures == [], load.failures
    assert "master stopped" in gateway.log


def test_startup_failure_exits_3_without_serving(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:failing_startup", "-b", "127.0.0.1:0", ready=False)
    assert gateway.wait(20) == 3
    assert "application startup failed: database unreachable" in gateway.log
    assert "Listening" not in gateway.log


def test_second_signal_stops_at_once_with_status_1(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "--graceful-timeout", "30")
    slow = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    slow.sendall(b"GET /slow?sleep=10 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.3)
    gateway.signal(signal.SIGINT)
    gateway.wait_for_line("draining")
    started = time.monotonic()
    gateway.signal(signal.SIGINT)
    assert gateway.wait(10) == 1
    assert time.monotonic() - started < 5
    slow.close()


def test_stop_during_a_slow_startup(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:slow_startup", "-b", "127.0.0.1:0", ready=False)
    gateway.wait_for_line("slow startup begins")
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(20) == 0
    assert "slow startup done" in gateway.log
    assert "slow shutdown" in gateway.log  # the started handler is stopped
    assert "Listening" not in gateway.log
