"""Slow readers of large proxied responses do not make other requests queue (issue 16).

Each response is relayed in bounded memory (``buffer_size``), so a client that reads slowly
keeps its upstream connection busy until it is done or cut.  Busy connections used to be
capped at ``max_idle_connections`` (512) per member: 1000 ``slowhttptest -X`` readers held
all of them, and a probe GET queued 2.2 s behind the others.  Now only idle connections
are capped there; busy ones follow demand unless ``max_connections`` is set.  Here the cap
is 2 and four clients read nothing of a 4 MiB response; a GET must still be answered.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from tests.gateway.proxy_support import raw_upstream, read_head, wait_for
from thor_gateway.proxy import ProxyHandler

SLOW = 4
BIG = b"x" * (4 << 20)


def serve(sock: socket.socket, head: bytes) -> None:
    body = BIG if head.startswith(b"GET /big") else b"small"
    sock.settimeout(15)
    try:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass  # the proxy gave up on a slow reader, and with it on this response


def test_slow_readers_leave_room_for_other_requests(live_server: Callable[..., Any]) -> None:
    with raw_upstream(serve) as up:
        live = live_server()
        handler = ProxyHandler([up.url], loop=live.loop, max_idle_connections=2)
        started = threading.Event()
        live.call(handler.startup, lambda exc: started.set())
        assert started.wait(5)
        live.mount(handler, b"/api")
        slow = []
        try:
            for _ in range(SLOW):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing
                sock.connect(("127.0.0.1", live.port))
                sock.sendall(b"GET /api/big HTTP/1.1\r\nHost: x\r\n\r\n")
                slow.append(sock)
            assert wait_for(lambda: len(up.heads) >= 2)  # the cap was reached, at least
            probe = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            probe.sendall(b"GET /api/small HTTP/1.1\r\nHost: x\r\n\r\n")
            # Before: two upstream connections, both busy with slow readers; the probe
            # queued behind the other two and nothing came.
            answer = read_head(probe, timeout=2.0)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            probe.close()
            assert up.connections == SLOW + 1
        finally:
            for sock in slow:
                sock.close()
