"""Graceful shutdown and idle keep-alive connections: a request on the wire is answered.

Closing an idle keep-alive connection when the drain begins loses the request its client
may be sending at that moment (issue 16, point 3).  So a draining server answers the next
request of each idle connection with ``Connection: close``, and closes a connection that
stays idle only at its keep-alive deadline, capped at half the graceful timeout; the
close is a lingering one (FIN, then reading), never a reset.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.http.server_helpers import ServerThread, read_all
from thor.http.server import HttpServerExchange


def hello(ex: HttpServerExchange) -> None:
    def done(trailers: object) -> None:
        ex.response_start(200, "OK", [("Content-Length", "2")])
        ex.response_body(b"ok")
        ex.response_done()

    ex.on("request_done", done)


def drain(srv: ServerThread, timeout: float) -> None:
    """Begin the graceful shutdown on the loop thread; return once it has begun."""
    begun = threading.Event()
    srv.call(lambda: (srv.server.graceful_shutdown(timeout), begun.set()))
    assert begun.wait(3)


def used_connection(port: int) -> socket.socket:
    """A keep-alive connection that has had one exchange and is idle now."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
    answer = b""
    while not answer.endswith(b"ok"):
        answer += sock.recv(4096)
    assert b"Connection: close" not in answer
    return sock


def test_the_next_request_of_an_idle_connection_is_answered_with_close() -> None:
    stopped = threading.Event()
    with ServerThread(hello, idle_timeout=30.0) as srv, used_connection(srv.port) as idle:
        srv.server.on("stop", stopped.set)
        drain(srv, 20.0)  # the drain has begun; the client sends its next request now
        idle.sendall(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = read_all(idle)  # until the server's FIN
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close\r\n" in answer
        assert answer.endswith(b"ok")
        assert stopped.wait(5)


def test_an_idle_connection_closes_at_its_keep_alive_deadline() -> None:
    stopped = threading.Event()
    with ServerThread(hello, idle_timeout=1.0) as srv, used_connection(srv.port) as idle:
        srv.server.on("stop", stopped.set)
        began = time.monotonic()
        drain(srv, 20.0)
        idle.settimeout(0.3)
        with pytest.raises(TimeoutError):  # not closed as the drain began
            idle.recv(4096)
        idle.settimeout(5)
        assert idle.recv(4096) == b""  # FIN at the keep-alive deadline, not a reset
        assert time.monotonic() - began < 3
        assert stopped.wait(5)


def test_a_long_keep_alive_is_cut_at_half_the_graceful_timeout() -> None:
    stopped = threading.Event()
    with ServerThread(hello, idle_timeout=60.0) as srv, used_connection(srv.port) as idle:
        srv.server.on("stop", stopped.set)
        began = time.monotonic()
        drain(srv, 2.0)
        idle.settimeout(5)
        assert idle.recv(4096) == b""  # a FIN (a reset would raise)
        assert 0.8 < time.monotonic() - began < 1.8  # at 1 s, before the abort at 2 s
        assert stopped.wait(5)
