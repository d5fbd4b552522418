"""HttpClient flow control: Expect: 100-continue and backpressure in both directions."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import thor.loop
from thor.http.client.exchange import PENDING_HIGH_WATER

from .client_support import (
    Clients,
    Result,
    fetch,
    header_value,
    raw_server,
    read_chunked,
    read_exact,
    read_head,
    run_until,
)


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


EXPECT = [("Expect", "100-continue"), ("Content-Length", "5")]


def test_expect_continue_waits_for_100(loop: thor.loop.Loop, clients: Clients) -> None:
    early: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        _head, buf = read_head(sock)
        sock.settimeout(0.3)
        try:
            early.append(bytes(buf) + sock.recv(100))  # nothing may come before the 100
        except TimeoutError:
            pass
        sock.settimeout(5)
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body, _ = read_exact(sock, buf, 5)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)
        sock.recv(10)

    client = clients()
    with raw_server(handler) as srv:
        r = fetch(loop, client, "POST", f"http://127.0.0.1:{srv.port}/", EXPECT, body=b"hello")
        assert r.order == ["nonfinal", "start", "body", "done"]
        assert r.nonfinal[0][0] == b"100"
        assert r.body == b"hello"
    assert early == []


def test_expect_continue_gives_up_waiting(loop: thor.loop.Loop, clients: Clients) -> None:
    def handler(sock: socket.socket) -> None:  # an old server: no 100, reads the body
        _, buf = read_head(sock)
        body, _ = read_exact(sock, buf, 5)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)
        sock.recv(10)

    client = clients(expect_continue_timeout=0.2)
    with raw_server(handler) as srv:
        start = time.monotonic()
        r = fetch(loop, client, "PUT", f"http://127.0.0.1:{srv.port}/", EXPECT, body=b"hello")
        assert r.body == b"hello"
        assert time.monotonic() - start >= 0.2


def test_final_response_instead_of_100_skips_body(loop: thor.loop.Loop, clients: Clients) -> None:
    after: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        _, buf = read_head(sock)
        sock.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
        rest = bytes(buf)
        while chunk := sock.recv(100):
            rest += chunk
        after.append(rest)

    client = clients()
    with raw_server(handler) as srv:
        r = fetch(loop, client, "POST", f"http://127.0.0.1:{srv.port}/", EXPECT, body=b"hello")
        assert r.status == b"417"
        assert r.order == ["start", "done"]
        run_until(loop, lambda: bool(after))
        assert client.conn_counts == {}  # the request was not completed: no reuse
    assert after == [b""]


def test_request_body_backpressure(loop: thor.loop.Loop, clients: Clients) -> None:
    """The server stops reading: the client says pause(True), then pause(False) when it reads."""
    reading = threading.Event()
    received: list[int] = []

    def handler(sock: socket.socket) -> None:
        _, buf = read_head(sock)
        reading.wait(10)
        body, _, _ = read_chunked(sock, buf)
        received.append(len(body))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(b"x" * len(body))
        sock.recv(10)

    total = 32 * 1024 * 1024
    block = b"b" * 65536
    client = clients(read_timeout=10)
    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop)
        sent = [0]
        written_when_paused: list[int] = []

        def pump() -> None:
            while sent[0] < total and not ex._paused:
                ex.request_body(block)
                sent[0] += len(block)
            if sent[0] >= total:
                ex.request_done([])

        def on_pause(paused: bool) -> None:
            if paused:
                written_when_paused.append(sent[0])
                reading.set()
            else:
                loop.call_soon(pump)

        ex.on("pause", on_pause)
        ex.request_start("POST", f"http://127.0.0.1:{srv.port}/", [])
        pump()
        run_until(loop, lambda: r.finished, 20)
        assert r.status == b"200", r.error
        assert len(r.body) == total
    assert received == [total]
    assert r.pauses[:2] == [True, False]
    # Paused long before everything was written: memory was bounded by the flow control.
    assert written_when_paused[0] < 16 * 1024 * 1024


def test_pending_body_without_connection_pauses(loop: thor.loop.Loop, clients: Clients) -> None:
    """With max_server_conn reached, a queued exchange asks its caller to pause."""
    release = threading.Event()

    def handler(sock: socket.socket) -> None:
        buf = None
        while True:
            try:
                head, buf = read_head(sock, buf)
            except ConnectionError:
                return
            if header_value(head, b"content-length"):
                _, buf = read_exact(sock, buf, int(header_value(head, b"content-length") or 0))
            else:
                release.wait(10)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    client = clients(max_server_conn=1, read_timeout=10)
    with raw_server(handler) as srv:
        url = f"http://127.0.0.1:{srv.port}/"
        first = client.exchange()
        r1 = Result(first, loop, stop=False)
        first.request_start("GET", url, [])
        first.request_done([])
        second = client.exchange()
        r2 = Result(second, loop, stop=False)
        size = PENDING_HIGH_WATER * 2
        second.request_start("POST", url, [("Content-Length", str(size))])
        second.request_body(b"p" * size)
        assert r2.pauses == [True]  # queued behind the first exchange
        release.set()
        run_until(loop, lambda: r1.finished and r2.finished, 10)
        assert r2.pauses == [True, False]
        assert r2.status == b"200"


def test_response_backpressure_64_mib(loop: thor.loop.Loop, clients: Clients) -> None:
    """res_body_pause stops reading: the server blocks, the gap stays bounded."""
    size = 64 * 1024 * 1024
    block = b"r" * (1024 * 1024)
    sent = [0]

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            sock.sendall(block)
            sent[0] += len(block)
        sock.recv(10)

    client = clients(read_timeout=10)
    gaps: list[int] = []
    received = [0]
    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop)
        next_pause = [8 * 1024 * 1024]

        def resume() -> None:
            gaps.append(sent[0] - received[0])  # what the server got rid of while we slept
            ex.res_body_pause(False)

        def on_body(chunk: bytes) -> None:
            received[0] += len(chunk)
            if received[0] >= next_pause[0]:
                next_pause[0] += 8 * 1024 * 1024
                ex.res_body_pause(True)
                loop.schedule(0.15, resume)

        ex.on("response_body", on_body)
        r.chunks = []  # keep nothing: only count
        ex.remove_listener("response_body", r._body)
        ex.request_start("GET", f"http://127.0.0.1:{srv.port}/big", [])
        ex.request_done([])
        run_until(loop, lambda: r.finished, 60)
        assert r.order == ["start", "done"], r.error
        assert received[0] == size
    assert len(gaps) >= 7  # the pause at 64 MiB ends with the response
    # While paused the server could only fill the socket buffers, far less than 64 MiB.
    assert max(gaps) < 24 * 1024 * 1024


def test_early_final_response_during_upload(loop: thor.loop.Loop, clients: Clients) -> None:
    """The server answers (413) before reading the body: the exchange ends with the response,
    later request_body calls are ignored, and the connection is not reused."""
    got_eof = threading.Event()

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 3\r\n\r\nbig")
        while sock.recv(65536):
            pass
        got_eof.set()

    client = clients()
    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop, stop=False)
        ex.request_start("POST", f"http://127.0.0.1:{srv.port}/", [])
        ex.request_body(b"first part")
        run_until(loop, lambda: r.finished)
        assert (r.status, r.body, r.order) == (b"413", b"big", ["start", "body", "done"])
        ex.request_body(b"more")
        ex.request_done([])
        run_until(loop, got_eof.is_set)
        assert client.conn_counts == {}


def test_slow_caller_does_not_trip_read_timeout(loop: thor.loop.Loop, clients: Clients) -> None:
    """read_timeout counts the server's silence, not the caller's slowness with the body."""

    def handler(sock: socket.socket) -> None:
        _, buf = read_head(sock)
        body, _, _ = read_chunked(sock, buf)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        sock.recv(10)

    client = clients(read_timeout=0.2)
    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop)
        ex.request_start("POST", f"http://127.0.0.1:{srv.port}/", [])
        ex.request_body(b"a")
        loop.schedule(0.35, ex.request_body, b"b")
        loop.schedule(0.7, ex.request_done, [])
        run_until(loop, lambda: r.finished, 5)
        assert r.body == b"ab", r.error


def test_expect_continue_head_goes_before_the_body(loop: thor.loop.Loop, clients: Clients) -> None:
    """With Expect: 100-continue the head is sent at once, before any request_body."""
    head_seen = threading.Event()

    def handler(sock: socket.socket) -> None:
        _, buf = read_head(sock)
        head_seen.set()
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body, _ = read_exact(sock, buf, 5)
        sock.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\n" + body)
        sock.recv(10)

    client = clients()
    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop, stop=False)
        ex.request_start("PUT", f"http://127.0.0.1:{srv.port}/", EXPECT)
        run_until(loop, lambda: head_seen.is_set() and r.order == ["nonfinal"])
        ex.request_body(b"hello")
        ex.request_done([])
        run_until(loop, lambda: r.finished)
        assert (r.status, r.body) == (b"201", b"hello")
