"""A large response body is handed to the socket by reference, never copied per connection.

Issue 16, finding 2: a thousand slow readers of one 1 MiB WSGI response took the gateway
from 27 MB to 1.7 GB, because the server joined each response's head and body into one
new buffer that the slow connection then held.  Here ten clients that do not read get the
same 8 MiB bytes object (more than the kernel's socket buffers take, so most of it waits
in the server's write buffer); the memory Python allocated meanwhile is measured with
tracemalloc, in this process, where the server runs.
"""

from __future__ import annotations

import socket
import tracemalloc

from tests.http.client_support import wait_for
from tests.http.server_helpers import ServerThread
from thor.http.server import HttpServerExchange

BODY = b"x" * (8 << 20)
CLIENTS = 10


def shared_body(ex: HttpServerExchange) -> None:
    ex.respond(200, b"OK", [(b"Content-Length", b"%d" % len(BODY))], BODY)


def test_slow_readers_share_one_response_body() -> None:
    answered: list[HttpServerExchange] = []

    def handler(ex: HttpServerExchange) -> None:
        ex.on("request_start", lambda *_: (shared_body(ex), answered.append(ex)))

    socks = []
    tracemalloc.start()
    try:
        with ServerThread(handler) as live:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(CLIENTS):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(5)
                sock.connect(("127.0.0.1", live.port))
                sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                socks.append(sock)
            wait_for(lambda: len(answered) == CLIENTS)
            held = sum(c.tcp_conn.write_buffer_size for c in list(live.server.connections))
            grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        for sock in socks:
            sock.close()
    # Most of each body waits in the server (the clients read nothing)...
    assert held > CLIENTS * len(BODY) // 2, held
    # ...yet no copy of it was made: far less than one body per connection.
    assert grown < 2 * len(BODY), f"{grown / 2**20:.0f} MiB allocated for {CLIENTS} readers"
