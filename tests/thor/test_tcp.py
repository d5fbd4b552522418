"""TCP connections, servers and clients over real loopback sockets."""

from __future__ import annotations

import errno
import json
import logging
import os
import select
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import thor
from tests.thor._core_helpers import SELECTOR_CLASSES, Net, has_ipv6_loopback, run_until
from thor.loop import Loop
from thor.tcp import ConnState

IPV6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def net(loop: Loop) -> Iterator[Net]:
    tracker = Net(loop)
    yield tracker
    tracker.close()


@pytest.fixture
def sock_dir() -> Iterator[str]:
    # Short: AF_UNIX paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="thor-") as path:
        yield path


def echo(conn: thor.TcpConnection) -> None:
    conn.on("data", conn.write)
    conn.on("close", conn.close)


class EchoClient:
    """Sends ``payload`` in one write and collects the echo, then closes."""

    def __init__(self, net: Net, payload: bytes) -> None:
        self.net = net
        self.payload = payload
        self.received = bytearray()
        self.events: list[str] = []
        self.errors: list[tuple[str, int, str]] = []
        self.conn: thor.TcpConnection | None = None
        self.client = net.client()
        self.client.on("connect", self.on_connect)
        self.client.on("connect_error", lambda *e: self.errors.append(e))

    def on_connect(self, conn: thor.TcpConnection) -> None:
        self.conn = conn
        conn.on("data", self.on_data)
        conn.on("close", lambda: self.events.append("close"))
        conn.on("disconnect", lambda: self.events.append("disconnect"))
        conn.write(self.payload)

    def on_data(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.payload) and self.conn is not None:
            self.conn.close()

    def done(self) -> bool:
        return "disconnect" in self.events or bool(self.errors)


def run_echo(net: Net, connect: Any, payload: bytes = b"hello, thor" * 1000) -> EchoClient:
    client = EchoClient(net, payload)
    connect(client.client)
    run_until(net.loop, client.done, 5)
    assert client.errors == []
    assert bytes(client.received) == payload
    assert client.events == ["close", "disconnect"] or client.events == ["disconnect"]
    return client


# ------------------------------------------------------------------ echo


def test_echo_ipv4(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    server.on("connect", echo)
    assert server.host == "127.0.0.1"
    assert server.port > 0
    run_echo(net, lambda c: c.connect("127.0.0.1", server.port, connect_timeout=2))


@pytest.mark.parametrize("selector_class", SELECTOR_CLASSES, ids=lambda c: c.__name__)
def test_echo_on_every_selector(selector_class: type[selectors.BaseSelector]) -> None:
    loop = Loop(selector_class())
    loop.fatal_errors = True
    tracker = Net(loop)
    try:
        server = tracker.server("127.0.0.1", 0)
        server.on("connect", echo)
        payload = os.urandom(1024 * 1024)
        run_echo(tracker, lambda c: c.connect("127.0.0.1", server.port, connect_timeout=2), payload)
    finally:
        tracker.close()
        loop.close()


@IPV6
def test_echo_ipv6(net: Net) -> None:
    server = net.server("::1", 0)
    peers: list[Any] = []
    server.on("connect", lambda conn: peers.append(conn.address))
    server.on("connect", echo)
    run_echo(net, lambda c: c.connect(b"::1", server.port, connect_timeout=2))
    assert peers[0][0] == "::1"


@IPV6
def test_dual_stack_any_address(net: Net) -> None:
    server = net.server(None, 0)
    server.on("connect", echo)
    assert server.host == "::"
    peers: list[Any] = []
    server.on("connect", lambda conn: peers.append(conn.address[0]))
    run_echo(net, lambda c: c.connect("127.0.0.1", server.port, connect_timeout=2))
    run_echo(net, lambda c: c.connect("::1", server.port, connect_timeout=2))
    assert peers == ["::ffff:127.0.0.1", "::1"]


def test_echo_via_localhost_name(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    server.on("connect", echo)
    run_echo(net, lambda c: c.connect("localhost", server.port, connect_timeout=2))


def test_echo_unix_path(net: Net, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s")
    server = net.server(path=path)
    server.on("connect", echo)
    assert server.port == 0
    run_echo(net, lambda c: c.connect_unix(path, 2))
    server.stop_accepting()
    assert not os.path.exists(path)  # removed with the listener


def test_unix_path_stale_socket_is_replaced_live_one_is_not(net: Net, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays: a stale socket
    server = net.server(path=path)
    server.on("connect", echo)
    with pytest.raises(OSError, match="listening") as info:
        thor.TcpServer(path=path, loop=net.loop)
    assert info.value.errno == errno.EADDRINUSE
    run_echo(net, lambda c: c.connect_unix(path, 2))


def test_echo_adopted_socket(net: Net) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    server = net.server(sock=listener)
    server.on("connect", echo)
    assert server.port == listener.getsockname()[1]
    run_echo(net, lambda c: c.connect("127.0.0.1", server.port, connect_timeout=2))


def test_echo_adopted_fd(net: Net) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    fd = listener.detach()
    server = net.server(fd=fd)
    server.on("connect", echo)
    assert server.sock.fileno() == fd
    run_echo(net, lambda c: c.connect("127.0.0.1", server.port, connect_timeout=2))


def test_connection_over_adopted_connected_socket(net: Net) -> None:
    a, b = socket.socketpair()  # blocking: TcpConnection makes it non-blocking
    net.sock(b)
    conn = thor.TcpConnection(a, "pair", net.loop)
    net.conns.append(conn)
    got = bytearray()
    conn.on("data", got.extend)
    b.sendall(b"ping")
    run_until(net.loop, lambda: got == b"ping", 2)
    conn.write(b"pong")
    b.settimeout(2)
    assert b.recv(10) == b"pong"


def test_large_transfer_both_ways(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    server.on("connect", echo)
    payload = os.urandom(4 * 1024 * 1024)
    run_echo(net, lambda c: c.connect("127.0.0.1", server.port, connect_timeout=2), payload)


# ----------------------------------------------------------------- closing


def test_half_close_server_still_answers(net: Net) -> None:
    """The client shuts its write side; the server sees 'close' and still replies."""
    server = net.server("127.0.0.1", 0)
    server_seen: list[Any] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        request = bytearray()
        conn.on("data", request.extend)

        def on_close() -> None:
            server_seen.append(bytes(request))
            conn.write(b"reply to " + bytes(request))
            conn.close()

        conn.on("close", on_close)

    server.on("connect", on_server_conn)
    got = bytearray()
    events: list[str] = []

    def on_client(conn: thor.TcpConnection) -> None:
        conn.on("data", got.extend)
        conn.on("close", lambda: (events.append("close"), conn.close()))
        conn.on("disconnect", lambda: events.append("disconnect"))
        conn.write(b"question")
        conn.shutdown_write()
        assert not conn.tcp_connected
        conn.write(b"dropped after shutdown_write")

    client = net.client()
    client.on("connect", on_client)
    client.connect("127.0.0.1", server.port, connect_timeout=2)
    run_until(net.loop, lambda: "disconnect" in events, 5)
    assert server_seen == [b"question"]
    assert bytes(got) == b"reply to question"
    assert events == ["close", "disconnect"]


def test_close_flushes_a_large_buffer_before_fin(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    payload = os.urandom(16 * 1024 * 1024)
    states: list[tuple[ConnState, int]] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.write(payload)
        conn.close()
        states.append((conn.state, conn.write_buffer_size))
        conn.write(b"dropped after close")

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    raw.setblocking(False)
    got = bytearray()
    eof = [False]

    def read() -> None:
        try:
            data = raw.recv(1 << 20)
        except BlockingIOError:
            return
        if data:
            got.extend(data)
        else:
            eof[0] = True
            net.loop.remove_reader(raw.fileno())

    net.loop.add_reader(raw.fileno(), read)
    run_until(net.loop, lambda: eof[0], 10)
    assert states[0][0] is ConnState.FLUSHING
    assert states[0][1] > 0  # the kernel did not take it all at once
    assert len(got) == len(payload)
    assert bytes(got) == payload


def test_abort_drops_buffer_and_emits_only_disconnect(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    events: list[str] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.on("close", lambda: events.append("close"))
        conn.on("disconnect", lambda: events.append("disconnect"))
        conn.write(b"x" * (8 * 1024 * 1024))
        conn.abort()
        assert conn.state is ConnState.CLOSED
        conn.abort()  # twice: nothing

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    run_until(net.loop, lambda: bool(events), 2)
    total = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            data = raw.recv(1 << 20)
        except ConnectionResetError:
            break
        if not data:
            break
        total += len(data)
    assert events == ["disconnect"]
    assert total < 8 * 1024 * 1024
    assert not server.active_connections


def test_peer_reset_emits_close_then_disconnect(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    events: list[str] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.on("close", lambda: events.append("close"))
        conn.on("disconnect", lambda: events.append("disconnect"))

    server.on("connect", on_server_conn)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    run_until(net.loop, lambda: bool(server.active_connections), 2)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # SO_LINGER 0: RST instead of FIN
    run_until(net.loop, lambda: "disconnect" in events, 2)
    assert events == ["close", "disconnect"]


def test_write_to_a_reset_connection_emits_on_the_next_iteration(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    events: list[str] = []
    conns: list[thor.TcpConnection] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.on("close", lambda: events.append("close"))
        conn.on("disconnect", lambda: events.append("disconnect"))
        conns.append(conn)

    server.on("connect", on_server_conn)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    run_until(net.loop, lambda: bool(conns), 2)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    # Wait (bounded) until the reset has reached our socket; the loop has not looked yet.
    assert select.select([conns[0].socket], [], [], 2)[0]
    conns[0].write(b"into a reset connection")
    assert events == []  # not from inside write()
    assert conns[0].state is ConnState.CLOSED
    conns[0].write(b"dropped")
    run_until(net.loop, lambda: "disconnect" in events, 2)
    assert events == ["close", "disconnect"]


def test_peer_eof_then_close_emits_close_then_disconnect(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    events: list[str] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.on("close", lambda: (events.append("close"), conn.close()))
        conn.on("disconnect", lambda: events.append("disconnect"))

    server.on("connect", on_server_conn)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    raw.close()
    run_until(net.loop, lambda: "disconnect" in events, 2)
    assert events == ["close", "disconnect"]


def test_lingering_close_discards_input_then_closes(net: Net) -> None:
    """close() with the peer still sending: the peer gets FIN (no reset) and our reply."""
    server = net.server("127.0.0.1", 0)

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.write(b"bye")
        conn.close()

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    raw.sendall(b"unread input " * 1000)
    run_until(net.loop, lambda: bool(server.active_connections), 2)
    run_until(net.loop, lambda: next(iter(server.active_connections)).state is ConnState.LINGERING)
    assert raw.recv(10) == b"bye"
    assert raw.recv(10) == b""  # FIN, not a reset
    raw.sendall(b"more input while it lingers")
    raw.shutdown(socket.SHUT_WR)
    run_until(net.loop, lambda: not server.active_connections, 3)


def test_linger_gives_up_after_close_timeout(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    closed_at: list[float] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.close_timeout = 0.05
        conn.on("disconnect", lambda: closed_at.append(time.monotonic()))
        conn.close()

    server.on("connect", on_server_conn)
    started = time.monotonic()
    net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    run_until(net.loop, lambda: bool(closed_at), 2)
    assert 0.04 < closed_at[0] - started < 1.0


# ------------------------------------------------------------- connecting


def test_connect_refused(net: Net) -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # bound, never listening: refused
    port = unused.getsockname()[1]
    try:
        client = EchoClient(net, b"x")
        client.client.connect("127.0.0.1", port, connect_timeout=2)
        run_until(net.loop, client.done, 3)
    finally:
        unused.close()
    assert len(client.errors) == 1
    kind, code, message = client.errors[0]
    assert (kind, code) == ("socket", errno.ECONNREFUSED)
    assert "refused" in message.lower()


def test_connect_timeout_against_full_backlog(net: Net) -> None:
    listener = net.sock(socket.socket())
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # one completed connection fills the queue; never accepted
    port = listener.getsockname()[1]
    filler = net.sock(socket.create_connection(("127.0.0.1", port), timeout=2))
    assert filler.fileno() >= 0
    client = EchoClient(net, b"x")
    started = time.monotonic()
    client.client.connect("127.0.0.1", port, connect_timeout=0.2)
    run_until(net.loop, client.done, 3)
    assert client.errors == [("socket", errno.ETIMEDOUT, "Connection timed out")]
    assert 0.15 < time.monotonic() - started < 2
    assert net.loop.fd_count() == 0  # the half-open socket is gone


def test_connect_unix_missing_path(net: Net, sock_dir: str) -> None:
    client = EchoClient(net, b"x")
    client.client.connect_unix(os.path.join(sock_dir, "missing"), 2)
    run_until(net.loop, client.done, 2)
    assert client.errors[0][:2] == ("socket", errno.ENOENT)


def test_check_ip_refuses_access(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    client = EchoClient(net, b"x")
    client.client.check_ip = lambda ip: not ip.startswith("127.")
    client.client.connect("127.0.0.1", server.port, connect_timeout=2)
    run_until(net.loop, client.done, 2)
    assert client.errors == [("access", errno.EACCES, "address not allowed")]


def test_client_connects_again_after_an_error(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    server.on("connect", echo)
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    try:
        client = EchoClient(net, b"again")
        client.client.connect("127.0.0.1", unused.getsockname()[1], connect_timeout=2)
        run_until(net.loop, client.done, 2)
    finally:
        unused.close()
    assert client.errors[0][1] == errno.ECONNREFUSED
    client.errors.clear()
    client.client.connect("127.0.0.1", server.port, connect_timeout=2)
    run_until(net.loop, client.done, 2)
    assert client.errors == []
    assert bytes(client.received) == b"again"


# ------------------------------------------------------------ flow control


def test_write_pause_events_follow_water_marks(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    pauses: list[bool] = []
    conns: list[thor.TcpConnection] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.set_write_buffer_limits(64 * 1024, 16 * 1024)
        conn.on("pause", pauses.append)
        conns.append(conn)
        for _ in range(200):  # 12.8 MB: more than the kernel buffers
            conn.write(b"z" * 64 * 1024)

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    run_until(net.loop, lambda: bool(pauses), 2)
    assert pauses == [True]
    assert conns[0].write_buffer_size > 64 * 1024
    raw.setblocking(False)
    total = [0]

    def drain() -> None:
        try:
            total[0] += len(raw.recv(1 << 20))
        except BlockingIOError:
            pass

    net.loop.add_reader(raw.fileno(), drain)
    run_until(net.loop, lambda: len(pauses) == 2, 5)
    assert pauses == [True, False]
    assert conns[0].write_buffer_size <= 16 * 1024
    with pytest.raises(ValueError, match="low"):
        conns[0].set_write_buffer_limits(10, 20)


def test_write_many_keeps_order_when_the_kernel_takes_part(net: Net) -> None:
    """write_many: one sendmsg while nothing waits; what the kernel does not take (a reader
    that has not read yet) is queued from the cut on, behind it more writes and write_many
    calls, and every byte arrives in order; the water marks see the queued pieces."""
    server = net.server("127.0.0.1", 0)
    pauses: list[bool] = []
    conns: list[thor.TcpConnection] = []
    pieces = [bytes([i % 251]) * (1000 + i * 297) for i in range(400)]  # odd sizes: cuts
    expected = b"".join(pieces) + b"tail"

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.set_write_buffer_limits(256 * 1024, 64 * 1024)
        conn.on("pause", pauses.append)
        conns.append(conn)
        conn.write_many([b"", *pieces[:3]])  # an empty piece is nothing
        for i in range(3, 400, 3):
            conn.write_many(pieces[i : i + 3])
        conn.write_many([b"ta", b"il"])

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    run_until(net.loop, lambda: bool(pauses), 2)
    assert pauses == [True]  # 24 MB cannot all go at once: queued, and said so
    raw.setblocking(False)
    got = bytearray()

    def drain() -> None:
        try:
            got.extend(raw.recv(1 << 20))
        except BlockingIOError:
            pass

    net.loop.add_reader(raw.fileno(), drain)
    run_until(net.loop, lambda: len(got) >= len(expected), 20)
    assert bytes(got) == expected
    assert pauses == [True, False]
    assert conns[0].write_buffer_size == 0


def test_read_pause_stops_data_events(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    got = bytearray()
    conns: list[thor.TcpConnection] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        conn.pause(True)
        conn.on("data", got.extend)
        conns.append(conn)

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    run_until(net.loop, lambda: bool(conns), 2)
    raw.sendall(b"held back")
    stop_at = net.loop.time() + 0.05
    run_until(net.loop, lambda: net.loop.time() > stop_at, 2)
    assert got == b""
    conns[0].pause(False)
    run_until(net.loop, lambda: got == b"held back", 2)


def test_streaming_1_gib_through_a_slow_reader_keeps_memory_flat() -> None:
    """1 GiB through a reader that pauses: peak RSS grows < 64 MiB; every byte arrives."""
    total = 1 << 30
    result = subprocess.run(
        [sys.executable, "-m", "tests.thor._stream_child", str(total), str(64 << 20), "0.005"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    print("1 GiB stream:", figures)
    assert figures["got"] == figures["sent"] == total
    assert figures["crc_got"] == figures["crc_sent"]
    assert figures["pauses"] > 0  # the writer was held back
    assert figures["max_buffered"] < 1 << 20
    assert figures["hwm_growth_kib"] < 64 * 1024
    assert figures["seconds"] < 20


# ----------------------------------------------------------------- servers


def test_exception_in_data_listener_is_logged_and_connection_goes_on(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    net.loop.fatal_errors = False
    server = net.server("127.0.0.1", 0)
    chunks: list[bytes] = []

    def on_server_conn(conn: thor.TcpConnection) -> None:
        def on_data(data: bytes) -> None:
            chunks.append(data)
            if len(chunks) == 1:
                raise RuntimeError("listener failed")
            conn.write(b"still here")

        conn.on("data", on_data)

    server.on("connect", on_server_conn)
    raw = net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    with caplog.at_level(logging.ERROR, logger="thor.loop"):
        raw.sendall(b"first")
        run_until(net.loop, lambda: len(chunks) == 1, 2)
        raw.sendall(b"second")
        run_until(net.loop, lambda: len(chunks) == 2, 2)
    assert raw.recv(20) == b"still here"
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_server_events_and_graceful_shutdown(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    events: list[str] = []
    server.on("start", lambda: events.append("start"))
    server.on("stop", lambda: events.append("stop"))
    server.on("connect", lambda conn: events.append("connect"))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    run_until(net.loop, lambda: "connect" in events, 2)
    server.graceful_shutdown(timeout=5)
    assert events == ["start", "connect"]  # waits for the connection
    conn = next(iter(server.active_connections))
    conn.close()
    raw.close()
    run_until(net.loop, lambda: "stop" in events, 3)
    assert events == ["start", "connect", "stop"]


def test_graceful_shutdown_aborts_at_timeout(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    stopped: list[float] = []
    server.on("stop", lambda: stopped.append(time.monotonic()))
    net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    run_until(net.loop, lambda: bool(server.active_connections), 2)
    started = time.monotonic()
    server.graceful_shutdown(timeout=0.05)
    run_until(net.loop, lambda: bool(stopped), 2)
    assert 0.04 < stopped[0] - started < 1
    assert not server.active_connections


def test_stop_accepting_drains_the_backlog(net: Net) -> None:
    server = net.server("127.0.0.1", 0)
    accepted: list[thor.TcpConnection] = []
    server.on("connect", accepted.append)
    raws = [
        net.sock(socket.create_connection(("127.0.0.1", server.port), timeout=2)) for _ in range(5)
    ]
    server.stop_accepting()  # before the loop ran: all 5 wait in the queue
    assert len(accepted) == 5
    assert len(raws) == 5
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_accept_backs_off_when_out_of_descriptors() -> None:
    """EMFILE: accepting pauses (no busy loop), then resumes and accepts the waiting peer."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.thor._emfile_child"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["paused", errno.EMFILE], "resumed", "connect"]
    assert "Too many open files" in result.stderr  # logged as a warning
