"""A connection's kernel send queue holds a bounded amount of unsent data (issue 16).

A send buffer that autotunes to megabytes (4 MiB on loopback) took a whole 1 MiB response
in one ``send()`` even for a client that reads nothing: a millisecond or more of the loop's
time per call and a megabyte of kernel memory per slow reader, and 1000 slow readers kept
the gateway's loop busy for seconds (probes waited up to 1.8 s). With ``TCP_NOTSENT_LOWAT``
set on the listening socket, the kernel takes about :data:`UNSENT_LIMIT` beyond what is in
flight; the rest waits in the connection's own buffer, by reference.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import thor
from tests.thor._core_helpers import Net, run_until
from thor._sockets import UNSENT_LIMIT
from thor.loop import Loop

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="no TCP_NOTSENT_LOWAT here"
)
BODY = b"x" * (1 << 20)


@pytest.fixture
def net(loop: Loop) -> Iterator[Net]:
    tracker = Net(loop)
    yield tracker
    tracker.close()


def test_a_reader_that_reads_nothing_gets_a_bounded_part_of_a_large_write(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    conns: list[thor.TcpConnection] = []

    def on_connect(conn: thor.TcpConnection) -> None:
        conn.write(BODY)  # one write, as a server writes a response the app returned whole
        conns.append(conn)

    server.on("connect", on_connect)
    readers = []
    for _ in range(3):
        sock = net.sock(socket.socket())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader's window
        sock.connect(("127.0.0.1", server.port))
        readers.append(sock)
    run_until(net.loop, lambda: len(conns) == 3, 5)
    for conn in conns:
        # The kernel took the limit, one more segment and what the tiny window lets fly:
        # most of the body is still the connection's (before: 0, the kernel had it all).
        assert conn.write_buffer_size >= len(BODY) - 2 * UNSENT_LIMIT, conn.write_buffer_size
        assert 0 < conn.unsent() <= 2 * UNSENT_LIMIT, conn.unsent()


def test_a_reader_that_reads_gets_every_byte(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    server.on("connect", lambda conn: (conn.write(BODY * 8), conn.close()))
    reader = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=5))
    reader.setblocking(False)
    got = [0, False]

    def drain() -> None:
        try:
            chunk = reader.recv(1 << 20)
        except BlockingIOError:
            return
        got[0] += len(chunk)
        if not chunk:
            got[1] = True
            net.loop.remove_reader(reader.fileno())

    net.loop.add_reader(reader.fileno(), drain)
    run_until(net.loop, lambda: bool(got[1]), 10)
    assert got[0] == 8 * len(BODY)
