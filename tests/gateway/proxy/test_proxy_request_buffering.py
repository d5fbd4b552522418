"""Request buffering: a body arrives (whole, or ``request_buffer_size`` of it) before the
request takes an upstream connection (issue 16).

Streamed at once, each slow upload held one of the member's pooled connections while it
trickled: 1000 ``slowhttptest -B`` clients took all 512, and a probe GET queued behind them
for 2.2 s. Here the pool has two connections and four clients trickle their bodies; a GET
must still be answered at once, and the bodies, once complete, must arrive whole.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from tests.gateway.proxy_support import raw_upstream, read_head, wait_for
from thor_gateway.proxy import ProxyHandler

SLOW = 4


def answer_with_body_length(sock: socket.socket, head: bytes) -> None:
    """Read the body the head announces, then answer its length (one request per connection)."""
    head, _, body = head.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return
        body += chunk
    answer = b"got %d" % len(body)
    sock.sendall(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
        % (len(answer), answer)
    )


def proxy(live: Any, url: str, **settings: Any) -> list[Any]:
    """Mount a proxy to ``url`` on ``live`` at /api; returns the exchanges it was given."""
    handler = ProxyHandler([url], loop=live.loop, **settings)
    started = threading.Event()
    live.call(handler.startup, lambda exc: started.set())
    assert started.wait(5)
    seen: list[Any] = []
    relay = handler.handle

    def handle(exchange: Any, request: Any) -> None:
        seen.append(exchange)
        relay(exchange, request)

    handler.handle = handle  # type: ignore[method-assign]
    live.mount(handler, b"/api")
    return seen


def post(port: int, length: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = b"POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length
    sock.sendall(head + first)
    return sock


def test_slow_uploads_leave_the_upstream_connections_to_others(
    live_server: Callable[..., Any],
) -> None:
    with raw_upstream(answer_with_body_length) as up:
        live = live_server()
        seen = proxy(live, up.url, max_connections=2)  # two requests in flight upstream
        slow = [post(live.port, 1000, b"0123456789") for _ in range(SLOW)]
        try:
            assert wait_for(lambda: len(seen) == SLOW)  # each is being proxied
            probe = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            probe.sendall(b"GET /api/probe HTTP/1.1\r\nHost: x\r\n\r\n")
            # Before: two trickling bodies were in flight upstream, and the probe was refused
            # (503) until a body was done or cut.
            answer = read_head(probe, timeout=2.0)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert up.connections == 1  # the probe's: no slow body took one
            probe.close()
            for sock in slow:  # the bodies complete: each goes upstream whole
                sock.sendall(b"x" * 990)
            for sock in slow:
                answer = read_head(sock)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                assert answer.endswith(b"got 1000") or sock.recv(64) == b"got 1000"
        finally:
            for sock in slow:
                sock.close()


def test_a_body_larger_than_the_buffer_streams_from_there(
    live_server: Callable[..., Any],
) -> None:
    with raw_upstream(answer_with_body_length) as up:
        live = live_server()
        proxy(live, up.url, request_buffer_size=4096)
        sock = post(live.port, 10_000, b"a" * 3000)
        try:
            # Under the buffer size: held, no upstream connection yet...
            probe = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            probe.sendall(b"GET /api/probe HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_head(probe).startswith(b"HTTP/1.1 200")
            probe.close()
            assert up.connections == 1
            # ...past it: the request goes upstream and the rest of the body follows.
            sock.sendall(b"b" * 2000)
            assert wait_for(lambda: up.connections == 2)
            sock.sendall(b"c" * 5000)
            answer = read_head(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert answer.endswith(b"got 10000") or sock.recv(64) == b"got 10000"
        finally:
            sock.close()


def test_request_buffering_off_streams_at_once(live_server: Callable[..., Any]) -> None:
    with raw_upstream(answer_with_body_length) as up:
        live = live_server()
        proxy(live, up.url, request_buffer_size=0)
        sock = post(live.port, 100, b"0123456789")
        try:
            assert wait_for(lambda: up.connections == 1)  # before the body is complete
            sock.sendall(b"x" * 90)
            answer = read_head(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer
        finally:
            sock.close()
