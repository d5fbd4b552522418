"""TcpConnection.sendfile: a file queued behind buffered writes, with flow control."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import thor
from tests.thor._core_helpers import Net, run_until
from thor.loop import Loop
from thor.tls import TlsConnection


@pytest.fixture
def net(loop: Loop) -> Iterator[Net]:
    n = Net(loop)
    yield n
    n.close()


def fds_on(path: Path) -> int:
    """Descriptors of this process open on ``path``."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}") == str(path)
        except OSError:
            pass
    return count


def reader(net: Net, port: int) -> tuple[bytearray, list[bool]]:
    """A raw client reading everything into a buffer until EOF or reset (flag set)."""
    raw = net.sock(socket.create_connection(("127.0.0.1", port), timeout=2))
    raw.setblocking(False)
    got = bytearray()
    ended = [False]

    def read() -> None:
        try:
            data = raw.recv(1 << 20)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        if data:
            got.extend(data)
        else:
            ended[0] = True
            net.loop.remove_reader(raw.fileno())

    net.loop.add_reader(raw.fileno(), read)
    return got, ended


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


@needs_proc
def test_sendfile_between_writes_in_order_with_flow_control(net: Net, tmp_path: Path) -> None:
    data = os.urandom(16 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    server = net.server("127.0.0.1", 0)
    pauses: list[bool] = []
    buffered: list[int] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.on("pause", pauses.append)
        conn.write(b"head:")
        fd = os.open(path, os.O_RDONLY)
        conn.sendfile(fd, 10, len(data) - 20)
        os.close(fd)  # the connection keeps its own
        conn.write(b":tail")
        buffered.append(conn.write_buffer_size)
        conn.on("pause", lambda paused: paused or conn.close())

    server.on("connect", on_server_conn)
    got, ended = reader(net, server.port)
    run_until(net.loop, lambda: ended[0], 20)
    assert bytes(got) == b"head:" + data[10:-10] + b":tail"
    # The queued file counts in the buffer, so pause(True) came, then pause(False).
    assert buffered[0] > len(data) // 2
    assert pauses[:2] == [True, False]
    assert fds_on(path) == 0


@needs_proc
def test_a_file_shorter_than_promised_loses_the_connection(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 1000)
    server = net.server("127.0.0.1", 0)
    events: list[str] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.on("disconnect", lambda: events.append("disconnect"))
        fd = os.open(path, os.O_RDONLY)
        conn.sendfile(fd, 0, 5000)
        os.close(fd)

    server.on("connect", on_server_conn)
    got, ended = reader(net, server.port)
    run_until(net.loop, lambda: ended[0] and bool(events), 10)
    assert bytes(got) == b"x" * 1000  # what there was, then the connection ends
    assert events == ["disconnect"]
    assert fds_on(path) == 0


@needs_proc
def test_abort_releases_queued_files(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"y" * 100)
    server = net.server("127.0.0.1", 0)
    seen: list[int] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.write(b"z" * (8 * 1024 * 1024))  # the kernel cannot take it all: sendfile queues
        fd = os.open(path, os.O_RDONLY)
        conn.sendfile(fd, 0, 100)
        os.close(fd)
        seen.append(fds_on(path))
        conn.abort()
        seen.append(fds_on(path))
        conn.sendfile(0, 0, 10)  # after closing: dropped, as write() is

    server.on("connect", on_server_conn)
    reader(net, server.port)
    run_until(net.loop, lambda: len(seen) == 2, 10)
    assert seen == [1, 0]


def test_tls_connections_do_not_sendfile() -> None:
    assert thor.TcpConnection.can_sendfile is True
    assert TlsConnection.can_sendfile is False
