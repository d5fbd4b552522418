"""Slow clients against thor-gateway over real sockets (issue 16, findings 1 and 5).

Thirty connections trickle POST bodies (a byte every 0.2 s) at a gateway with four
WSGI threads.  Before request bodies were received on the loop, each body held a
worker thread or a queue slot while it trickled, and a probe GET waited behind them
(or got 503); the stalled bodies then logged a traceback each.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

from tests.gateway.adapter_helpers import read_until_close, status_of

APP = "tests.gateway.hosting.slow_body_apps:length"
TRICKLERS = 30
STEP = 0.2
ROUNDS = 15  # 3 s of trickling: inside the default 5 s rate window's grace


def open_tricklers(port: int) -> list[tuple[socket.socket, bool]]:
    """Heads of POSTs whose bodies are too large to be waited for by the app before 0.x:
    half Content-Length (1 MB), half chunked."""
    socks = []
    for i in range(TRICKLERS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        chunked = i % 2 == 1
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 1000000"
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n\r\n")
        socks.append((sock, chunked))
    return socks


def trickle(socks: list[tuple[socket.socket, bool]], stop: threading.Event) -> None:
    for _ in range(ROUNDS):
        for sock, chunked in socks:
            try:
                sock.sendall(b"1\r\nx\r\n" if chunked else b"x")
            except OSError:
                pass
        if stop.wait(STEP):
            return


def probe(port: int) -> tuple[int, float]:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /probe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        raw = read_until_close(sock, deadline=5)
    return status_of(raw) if raw else 0, time.monotonic() - start


def test_trickled_bodies_do_not_take_the_wsgi_threads(start_gateway: Any) -> None:
    gateway = start_gateway(APP, "--port", "0", "--threads", "4", "--log-level", "info")
    socks = open_tricklers(gateway.port)
    stop = threading.Event()
    sender = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
    sender.start()
    try:
        probes = []
        for _ in range(3):
            stop.wait(0.6)  # spread the probes over the attack
            probes.append(probe(gateway.port))
    finally:
        stop.set()
        sender.join(10)
    for status, took in probes:
        assert status == 200, probes
        assert took < 1.0, f"a probe took {took:.2f} s: {probes}"
    # The bodies were never complete: the app never ran for them; closing is the
    # client's fault, logged in one line each at most, never with a traceback.
    for sock, _ in socks:
        sock.close()
    gateway.wait_for_line("rejecting request", timeout=5)
    gateway.stop()
    assert "Traceback" not in gateway.log, gateway.log
    # Thirty alike lines: the first ten, then one that counts the rest (at exit here).
    assert gateway.count_lines("rejecting request") <= 11, gateway.log
    assert gateway.count_lines(r"\[repeated \d+ more times in \d+ s\]") >= 1, gateway.log


def test_the_gateway_cuts_a_trickled_body_at_its_minimum_rate(start_gateway: Any) -> None:
    gateway = start_gateway(
        APP, "--port", "0", "--min-body-rate", "1000", "--min-rate-window", "0.5"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        start = time.monotonic()
        while time.monotonic() - start < 5:
            sock.sendall(b"x" * 10)  # 50 bytes/s
            if select.select([sock], [], [], STEP)[0]:
                break
        raw = read_until_close(sock, deadline=5)
    assert status_of(raw) == 408, raw[:200]
    assert time.monotonic() - start < 3


def test_a_buffered_upload_spills_to_disk_and_reaches_the_app(start_gateway: Any) -> None:
    gateway = start_gateway(APP, "--port", "0", "--wsgi-input-memory", "64k")
    body = b"z" * 300_000
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        raw = read_until_close(sock, deadline=5)
    assert status_of(raw) == 200
    assert raw.endswith(b"\r\n\r\n300000")
