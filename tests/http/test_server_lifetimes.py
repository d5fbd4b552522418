"""A finished server exchange is freed by reference counting, whatever its listeners hold.

Handlers' listeners are closures over the exchange (``hello`` below): the connection drops
them once the exchange can emit nothing more, so that no request leaves a reference cycle
for the garbage collector (under load its collections cost more than the requests).
"""

from __future__ import annotations

import gc
import http.client
import socket
import time
import weakref
from collections.abc import Callable

from thor.http.server import HttpServerExchange

from .server_helpers import ServerThread, hello


def test_answered_exchanges_are_freed_without_the_garbage_collector() -> None:
    refs: list[weakref.ref[HttpServerExchange]] = []

    def handler(ex: HttpServerExchange) -> None:
        refs.append(weakref.ref(ex))
        hello(ex)

    gc.collect()
    gc.disable()
    try:
        with ServerThread(handler) as srv:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            for _ in range(5):
                conn.request("GET", "/")
                assert conn.getresponse().read() == b"Hello, world!"
            conn.close()
            # Each exchange but the last is over (the last may wait for the connection).
            assert [ref() for ref in refs[:-1]] == [None] * 4
    finally:
        gc.enable()


def test_exchange_of_a_client_that_left_is_freed_without_the_garbage_collector() -> None:
    refs: list[weakref.ref[HttpServerExchange]] = []
    errors: list[object] = []

    def handler(ex: HttpServerExchange) -> None:
        refs.append(weakref.ref(ex))
        ex.on("error", lambda err: errors.append((ex, err)))  # never answered

    gc.collect()
    gc.disable()
    try:
        with ServerThread(handler) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                wait_for(lambda: bool(refs))
            wait_for(lambda: bool(errors))  # the server noticed that the client left
            errors.clear()  # the listener's own record of the exchange
            assert refs[0]() is None
    finally:
        gc.enable()


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
