"""--request-timeout, the worker --timeout (heartbeats) and --workers-max-rss, over real sockets."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.gateway.gateway_helpers import Gateway, poll, raw_exchange

APPS = "tests.gateway.serving.flags_apps"


def start(*args: str) -> Gateway:
    gateway = Gateway(*args)
    try:
        gateway.wait_ready()
    except BaseException:
        gateway.close()
        raise
    return gateway


def test_request_timeout_answers_504_before_the_response_starts() -> None:
    gateway = start(f"{APPS}:slow", "-b", "127.0.0.1:0", "--request-timeout", "500ms")
    try:
        began = time.monotonic()
        response = requests.get(gateway.url + "/?5", timeout=10)
        assert response.status_code == 504
        assert response.text == "504 Gateway Timeout\n"
        assert time.monotonic() - began < 4
        gateway.wait_for_line(r"request timeout \(0.5s\): GET /\?5 answered 504")
        # A request within the deadline is served as ever, on the same server.
        assert requests.get(gateway.url + "/?0", timeout=10).json() == {"slept": 0.0}
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_request_timeout_cuts_a_started_response() -> None:
    gateway = start(f"{APPS}:slow", "-b", "127.0.0.1:0", "--request-timeout", "0.5")
    try:
        began = time.monotonic()
        got = raw_exchange(gateway.port, b"GET /stream?5 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=8)
        assert time.monotonic() - began < 4, "the connection was not cut at the deadline"
        assert got.startswith(b"HTTP/1.1 200 OK")
        assert b"first " in got
        # Chunked, and never terminated: the client cannot take it as a whole response.
        assert b"second" not in got
        assert not got.endswith(b"0\r\n\r\n")
        gateway.wait_for_line(r"request timeout \(0.5s\): GET /stream\?5 cut short")
    finally:
        gateway.close()


def test_request_timeout_for_asgi() -> None:
    gateway = start(f"{APPS}:slow_asgi", "-b", "127.0.0.1:0", "--request-timeout", "0.5")
    try:
        assert requests.get(gateway.url + "/?5", timeout=10).status_code == 504
        assert requests.get(gateway.url + "/?0", timeout=10).text == "late"
    finally:
        gateway.close()


def test_without_request_timeout_a_slow_app_is_waited_for() -> None:
    gateway = start(f"{APPS}:slow", "-b", "127.0.0.1:0")
    try:
        assert requests.get(gateway.url + "/?1.5", timeout=10).status_code == 200
    finally:
        gateway.close()


def test_a_worker_whose_loop_is_stuck_is_killed_and_replaced() -> None:
    gateway = start(f"{APPS}:blocking", "-b", "127.0.0.1:0", "-w", "2", "--timeout", "1")
    try:
        gateway.wait_for_line(r"worker \d+ is listening")
        with pytest.raises(requests.exceptions.RequestException):
            # The worker that takes it blocks its loop for good: no answer ever comes.
            requests.get(gateway.url + "/block", timeout=(5, 6))
        match = gateway.wait_for_line(r"worker (\d+) timed out", timeout=15)
        stuck = int(match[1])
        gateway.wait_for_line(r"Fatal Python error: Aborted", timeout=10)  # its traceback
        gateway.wait_for_line(rf"worker {stuck} died", timeout=10)
        pids: set[int] = set()

        def others_serve() -> bool:
            pids.add(int(requests.get(gateway.url + "/", timeout=5).text))
            return len(pids) >= 2

        poll(others_serve, 20, "two live workers, the replacement among them")
        assert stuck not in pids
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_healthy_workers_are_not_killed_by_the_timeout() -> None:
    gateway = start(f"{APPS}:blocking", "-b", "127.0.0.1:0", "-w", "2", "--timeout", "0.5")
    try:
        gateway.wait_for_line(r"worker \d+ is listening")
        deadline = time.monotonic() + 2.5  # five timeouts of idle workers
        while time.monotonic() < deadline:
            assert requests.get(gateway.url + "/", timeout=5).status_code == 200
            time.sleep(0.1)
        assert "timed out" not in gateway.log
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_workers_max_rss_recycles_a_worker_past_the_limit() -> None:
    # Every Python process is past 1 MiB: the worker recycles itself at its first sample.
    gateway = start(f"{APPS}:blocking", "-b", "127.0.0.1:0", "--workers-max-rss", "1")
    try:
        first = gateway.wait_for_line(r"started worker (\d+)")
        line = gateway.wait_for_line(r"\[(\d+)\].*resident memory ([\d.]+) MiB is over", 15)
        assert int(line[1]) == int(first[1])
        assert float(line[2]) > 1
        poll(lambda: gateway.count_lines(r"started worker") >= 2, 15, "a replacement worker")
        assert requests.get(gateway.url + "/", timeout=5).status_code == 200
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_workers_max_rss_leaves_a_worker_under_the_limit_alone() -> None:
    gateway = start(f"{APPS}:blocking", "-b", "127.0.0.1:0", "--workers-max-rss", "100000")
    try:
        gateway.wait_for_line(r"worker \d+ is listening")
        time.sleep(2.5)  # more than one sample interval (at most 2 s)
        assert gateway.count_lines("started worker") == 1
        assert not re.search("is over --workers-max-rss", gateway.log)
    finally:
        gateway.close()
