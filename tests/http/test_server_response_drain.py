"""A response the kernel takes whole is still measured at the minimum response rate.

On loopback the send buffer grows to megabytes: a 1 MiB response goes into it at once, our
own buffer is empty, and a rate measured on that alone saw full speed while the client read
a few KB/s; 1000 such readers held a gigabyte of kernel memory (issue 16). The rate is now
measured on what the client acknowledged (``TcpConnection.unsent``), also after the
response ended.  Real sockets on loopback; short windows.
"""

from __future__ import annotations

import socket
import sys
import time

import pytest

from tests.http.client_support import wait_for
from tests.http.server_helpers import ServerThread, how_it_ends
from thor.http.server import HttpServerExchange

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the kernel's unsent count is Linux's SIOCOUTQ"
)

MIB = b"z" * (1 << 20)
REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def one_mib(ex: HttpServerExchange) -> None:
    ex.on(
        "request_start",
        lambda *_: ex.respond(200, b"OK", [(b"Content-Length", b"%d" % len(MIB))], MIB),
    )


@pytest.mark.parametrize("last", [False, True], ids=["keep-alive", "connection-close"])
def test_a_slow_reader_of_a_response_the_kernel_took_whole_is_reset(last: bool) -> None:
    # With Connection: close the server would otherwise close gracefully at once, and the
    # kernel trickle the megabyte on to the client after the server let go.
    with ServerThread(
        one_mib, min_response_rate=50_000, min_rate_window=0.5, idle_timeout=30
    ) as live:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        with sock:
            sock.connect(("127.0.0.1", live.port))
            sock.sendall(
                REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") if last else REQUEST
            )
            wait_for(lambda: bool(live.server.connections))
            # Whole in the kernel: no exchange in progress, nothing in our buffer.
            wait_for(lambda: all(c.exchange is None for c in live.server.connections))
            start = time.monotonic()
            while live.server.connections and time.monotonic() - start < 4:
                sock.recv(300)  # 3 KB/s
                time.sleep(0.1)
            after = time.monotonic() - start
            assert not live.server.connections, "the server still holds the slow reader"
            assert after < 2.5, f"cut only after {after:.1f} s"
            ended, received = how_it_ends(sock)
            # The kernel dropped the rest: not the megabyte, then a FIN.
            assert ended == "a reset", f"{ended} after {received} more bytes"
            assert received < len(MIB) // 2


def test_a_reader_that_keeps_up_is_not_cut_and_keeps_its_connection() -> None:
    with (
        ServerThread(
            one_mib, min_response_rate=50_000, min_rate_window=0.3, idle_timeout=30
        ) as live,
        socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock,
    ):
        for _ in range(3):
            sock.sendall(REQUEST)
            received = b""
            while b"\r\n\r\n" not in received or len(received) < received.index(
                b"\r\n\r\n"
            ) + 4 + len(MIB):
                data = sock.recv(65536)
                assert data, "the server closed the connection"
                received += data
            assert received.startswith(b"HTTP/1.1 200")
            time.sleep(0.7)  # more than a window, idle with the kernel's queue empty
        assert len(live.server.connections) == 1
