"""A bound per proxied response (the route's ``buffer_size``, as nginx's proxy_buffers):
a client that stops reading holds at most that much of its response in the gateway, the
rest waits in the upstream socket; a client that reads gets every byte (issue 16)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.gateway.proxy_support import raw_upstream, read_head, wait_for
from thor.tcp import TcpConnection
from thor_gateway.proxy import ProxyHandler

SIZE = 4 * 1024 * 1024
BODY = (bytes(range(256)) * (SIZE // 256))[:SIZE]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE


def serve_big(sock: socket.socket, head: bytes) -> None:
    sock.settimeout(15)
    try:
        sock.sendall(HEAD + BODY)
    except OSError:
        pass  # the proxy cut a slow client, and with it this request


def test_a_slow_reader_holds_at_most_the_buffer_size(
    live_server: Callable[..., Any],
) -> None:
    with raw_upstream(serve_big) as up:
        live = live_server()
        handler = ProxyHandler([up.url], loop=live.loop, buffer_size=64 * 1024)
        started = threading.Event()
        live.call(handler.startup, lambda exc: started.set())
        assert started.wait(5)
        seen: list[Any] = []
        relay = handler.handle

        def handle(exchange: Any, request: Any) -> None:
            # A kernel under memory pressure: small send buffers, so that what the client
            # does not read stays in the gateway's own buffer, where the bound applies.
            exchange.http_conn.tcp_conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            seen.append(exchange)
            relay(exchange, request)

        handler.handle = handle  # type: ignore[method-assign]
        live.mount(handler, b"/api")
        try:
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(("127.0.0.1", live.port))
            slow.sendall(b"GET /api/big HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in read_head(slow)
            first: list[int] = []
            steady: list[int] = []
            start = time.monotonic()
            slow.setblocking(False)
            while time.monotonic() - start < 2.0:  # the client reads 4 KiB per 10 ms
                try:
                    slow.recv(4096)
                except BlockingIOError:
                    pass
                size = live.call(lambda: seen[0].http_conn.tcp_conn.write_buffer_size)
                (first if time.monotonic() - start < 1.0 else steady).append(size)
                time.sleep(0.01)
            assert max(steady) > 0, "the gateway's buffer never filled: the test shows nothing"
            # The bound: the client's write mark (32 KiB) plus one upstream read (32 KiB).
            assert max(first + steady) <= 64 * 1024, (first, steady)
            slow.close()

            fast = socket.create_connection(("127.0.0.1", live.port))
            fast.settimeout(15)
            fast.sendall(b"GET /api/big HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive
            got = b""
            while b"\r\n\r\n" not in got or len(got.partition(b"\r\n\r\n")[2]) < SIZE:
                chunk = fast.recv(1 << 20)
                assert chunk, "the gateway closed before the whole body"
                got += chunk
            head, _, body = got.partition(b"\r\n\r\n")
            assert b"200 OK" in head
            assert len(body) == SIZE
            assert body == BODY
            # The bound was this response's: the connection's own marks are back after it.
            tcp = live.call(lambda: seen[-1].http_conn.tcp_conn)
            assert wait_for(lambda: tcp.write_high_water == TcpConnection.write_high_water)
            fast.close()
        finally:
            done = threading.Event()
            live.call(handler.shutdown, lambda exc: done.set())
            assert done.wait(5)
