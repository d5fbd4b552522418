"""Proxied and aggregated requests leave no reference cycles behind.

Under load, objects that only the garbage collector can free made its collections the
largest single cost of a proxied or aggregated request; everything a request creates must
be freed by reference counting once it is over. Measured as the number of unreachable
objects ``gc.collect()`` finds after many requests made with the collector off: a few per
connection are fine (a few dozen, whatever the number of requests), one per request is a
leak into the collector.
"""

from __future__ import annotations

import gc
import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import thor.loop
from tests.gateway.aggregation.test_aggregation import backend
from tests.gateway.proxy_support import raw_upstream, read_head, wait_for
from thor.http.client import HttpClient
from thor.http.server import HttpServer
from thor.testing import loop_in_thread
from thor_gateway.aggregation import Aggregator, Call
from thor_gateway.proxy import ProxyHandler
from thor_gateway.routing.router import Route, Router

REQUESTS = 200


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def garbage_after(port: int, path: str) -> int:
    """Make REQUESTS requests on one kept-alive connection; unreachable objects left."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)  # the first one opens the pooled connections
        assert conn.getresponse().read()
        gc.collect()
        for _ in range(REQUESTS):
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            response.read()
    finally:
        conn.close()
    return gc.collect()


def on_loop(loop: thor.loop.Loop, make: Callable[[], Any]) -> Any:
    """``make()`` run on the loop's thread (servers start listening from there)."""
    made: list[Any] = []
    ready = threading.Event()
    loop.run_in_loop(lambda: (made.append(make()), ready.set()))
    assert ready.wait(5)
    return made[0]


@contextmanager
def gateway(handler_for: Callable[[thor.loop.Loop], Any]) -> Iterator[tuple[int, Any, Any]]:
    """An HttpServer and the gateway's Router on a loop thread, as ``thor-gateway`` wires
    them, serving ``handler_for(loop)`` at the root; yields (port, handler, server)."""
    with loop_in_thread() as loop:
        handler = handler_for(loop)
        server = on_loop(loop, lambda: HttpServer("127.0.0.1", 0, loop=loop))
        started = threading.Event()
        loop.run_in_loop(handler.startup, lambda exc: started.set())
        assert started.wait(5)
        server.on("exchange", Router([Route(b"", handler)]).on_exchange)
        try:
            yield server.port, handler, server
        finally:
            done = threading.Event()
            loop.run_in_loop(handler.shutdown, lambda exc: done.set())
            assert done.wait(5)
            loop.run_in_loop(server.shutdown)


def keep_answering(sock: socket.socket, head: bytes) -> None:
    """Answer every request on the connection in one write (no Nagle stall on loopback)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    while head:
        sock.sendall(answer)
        head = read_head(sock)


def test_proxied_requests_leave_no_cycles(no_gc: None) -> None:
    with (
        raw_upstream(keep_answering) as up,
        gateway(lambda loop: ProxyHandler([up.url], loop=loop)) as (port, _, _),
    ):
        assert garbage_after(port, "/x") < REQUESTS // 4


def reset(sock: socket.socket, head: bytes) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def garbage(sock: socket.socket, head: bytes) -> None:
    sock.sendall(b"no status line\r\n\r\n")


def close_early(sock: socket.socket, head: bytes) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")


def stall(sock: socket.socket, head: bytes) -> None:
    time.sleep(0.5)  # past the proxy's upstream_timeout: 504


@pytest.mark.parametrize(
    ("script", "outcome"),
    [(reset, 502), (garbage, 502), (close_early, "IncompleteRead"), (stall, 504)],
    ids=["reset", "garbage", "early-close", "stall"],
)
def test_faulty_upstreams_and_closed_connections_leave_no_cycles(
    no_gc: None, script: Callable[[socket.socket, bytes], None], outcome: object
) -> None:
    # Issue 16, finding 4: under a fault mix each request leaves a closed client connection
    # and a closed upstream one; each was a reference cycle (the sockets' listeners, the
    # parsers' readers, a parse error's traceback), 55 to 100 objects a request that only
    # the collector freed, and the gateway's memory grew by what it left.
    count = 12

    def one() -> object:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/x")
            response = conn.getresponse()
            response.read()
            return response.status
        except http.client.HTTPException as error:
            return type(error).__name__
        finally:
            conn.close()

    settings = {"upstream_timeout": 0.2, "retries": 0, "max_fails": 0}
    with (
        raw_upstream(script) as up,
        gateway(lambda loop: ProxyHandler([up.url], loop=loop, **settings)) as (
            port,
            handler,
            server,
        ),
    ):
        assert one() == outcome  # the first one makes what lives on (the pool, memos)
        gc.collect()
        outcomes = [one() for _ in range(count)]
        assert outcomes == [outcome] * count
        # The gateway's side of the last connections closes after the client's.
        assert wait_for(lambda: not server.connections and not handler.client.pools)
        assert gc.collect() < count  # before: 55 to 100 a request


def test_aggregated_requests_leave_no_cycles(no_gc: None) -> None:
    with loop_in_thread() as backend_loop:
        services = on_loop(backend_loop, lambda: backend(backend_loop))
        base = f"http://127.0.0.1:{services.port}"

        def aggregator(loop: thor.loop.Loop) -> Aggregator:
            calls = {p: Call(f"{base}/{p}") for p in ("a", "bb")}
            return Aggregator(lambda r: calls, deadline=5.0, client=HttpClient(loop))

        try:
            with gateway(aggregator) as (port, _, _):
                assert garbage_after(port, "/") < REQUESTS // 4
        finally:
            backend_loop.run_in_loop(services.shutdown)
