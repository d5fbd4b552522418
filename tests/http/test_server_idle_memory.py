"""What an idle keep-alive connection costs the server (issue 16: 10,000 of them at 4 KB each).

Between requests a connection needs its socket, parser and timer, not the last request's
head, its response writer or an empty write queue: those are dropped when the exchange is
over (the queue is made again the first time the kernel does not take a whole write).
"""

from __future__ import annotations

import gc
import socket
import tracemalloc

from .server_helpers import ServerThread, hello

CONNECTIONS = 200
REQUEST = b"GET /a/longer/path?with=a&query=string HTTP/1.1\r\nHost: example\r\n" + (
    b"User-Agent: a client\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
)


def read_response(sock: socket.socket) -> None:
    data = b""
    while not data.endswith(b"Hello, world!"):
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk


def test_an_idle_keep_alive_connection_holds_no_request_state() -> None:
    socks: list[socket.socket] = []
    with ServerThread(hello, idle_timeout=60) as srv:
        first = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        first.sendall(REQUEST)
        read_response(first)  # everything lazily made once is made now
        socks.append(first)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(CONNECTIONS):
                sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                sock.sendall(REQUEST)
                read_response(sock)
                socks.append(sock)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
            for sock in socks:
                sock.close()
    # Only what thor allocated (the clients' sockets are this process's too). About 4.7 KB
    # before the request state and the empty write queue were dropped, 2.9 KB after.
    only_thor = [tracemalloc.Filter(True, "*/thor/*")]
    stats = after.filter_traces(only_thor).compare_to(before.filter_traces(only_thor), "lineno")
    per_connection = sum(stat.size_diff for stat in stats) / CONNECTIONS
    top = "\n".join(str(stat) for stat in stats[:8])
    assert per_connection < 3400, f"{per_connection:.0f} B per idle connection:\n{top}"
