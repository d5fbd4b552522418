"""HttpClient timers and object lifetimes: one lazy timer per connection, no reference cycles.

A connection's single timer serves both the read timeout of the exchange it carries and its
idle timeout in the pool; it may fire early and reschedules itself, but must never fire late.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import weakref
from collections.abc import Iterator

import pytest

import thor.loop
from thor.http import error

from .client_support import Clients, Result, fetch, raw_server, read_head, run_until


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


def answer_then_stall(answers: int) -> object:
    """Answer the first ``answers`` requests of a connection, then read and stay silent."""

    def handler(sock: socket.socket) -> None:
        buf = None
        for _ in range(answers):
            _, buf = read_head(sock, buf)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        try:
            read_head(sock, buf)
            sock.recv(10)  # until the client gives up
        except (ConnectionError, TimeoutError):
            pass

    return handler


def test_read_timeout_on_a_reused_connection_despite_a_later_idle_timer(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    # The idle timer (30 s) is pending when the second request starts on the connection:
    # the read timeout (0.3 s) must move it earlier, not wait for it.
    client = clients(idle_timeout=30, read_timeout=0.3)
    with raw_server(answer_then_stall(1)) as srv:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "GET", url).status == b"200"
        start = time.monotonic()
        r = fetch(loop, client, "GET", url, timeout=5)
        assert isinstance(r.error, error.ReadTimeoutError)
        assert 0.25 <= time.monotonic() - start < 3
        assert srv.accepted == 1


def test_idle_timeout_shorter_than_the_read_timeout(loop: thor.loop.Loop, clients: Clients) -> None:
    closed = threading.Event()

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        if sock.recv(10) == b"":
            closed.set()

    client = clients(idle_timeout=0.2, read_timeout=30)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        start = time.monotonic()
        assert fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/").status == b"200"
        run_until(loop, lambda: not client.conn_counts, 3)
        assert 0.2 <= time.monotonic() - start < 3
        assert closed.wait(3)


def test_read_timeout_still_counts_silence_after_an_early_firing(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    # A slow but steady answer on a reused connection: the timer left over from the first
    # exchange fires early for the second one, which must not fail while bytes keep coming.
    def handler(sock: socket.socket) -> None:
        buf = None
        _, buf = read_head(sock, buf)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_head(sock, buf)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for _ in range(6):
            time.sleep(0.1)
            sock.sendall(b"x")

    client = clients(read_timeout=0.35)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "GET", url).status == b"200"
        time.sleep(0.2)  # the connection's timer is now due early in the next exchange
        r = fetch(loop, client, "GET", url, timeout=5)
        assert r.error is None
        assert r.body == b"xxxxxx"


def test_requests_on_a_kept_connection_schedule_no_timer_each(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients(idle_timeout=30, read_timeout=10)
    with raw_server(answer_then_stall(20)) as srv:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "GET", url).status == b"200"
        before = loop._timer_seq
        for _ in range(10):
            assert fetch(loop, client, "GET", url).status == b"200"
        # fetch's own run_for schedules one timer per call; the client none (it used to
        # schedule a read timer and an idle timer per request).
        assert loop._timer_seq - before <= 10 + 1
        assert srv.accepted == 1


def test_finished_exchanges_are_freed_without_the_garbage_collector(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients()
    refs: list[weakref.ref[object]] = []
    with raw_server(answer_then_stall(3)) as srv:  # type: ignore[arg-type]
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                ex = client.exchange()
                result = Result(ex, loop)
                # A listener that refers back to the exchange: the usual closure.
                ex.on("response_start", lambda *args, ex=ex: ex.res_version)
                ex.request_start("GET", f"http://127.0.0.1:{srv.port}/", [])
                ex.request_done([])
                run_until(loop, lambda result=result: result.finished)  # type: ignore[misc]
                refs.append(weakref.ref(ex))
                del ex, result
            assert [ref() for ref in refs] == [None, None, None]
        finally:
            gc.enable()
