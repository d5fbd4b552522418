"""Upgrade handshakes relayed by the proxy, over raw sockets: the 101, the bytes after it,
backpressure, each side's end, the idle timeout, balancing, non-101 answers, metrics."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.gateway.proxy.upgrade_support import (
    SWITCH,
    BufferWatch,
    handshake,
    make_proxy,
    member_counts,
    open_tunnel,
    open_tunnels,
    recv_exactly,
    reset,
    switch_and_echo,
    wait_closed,
)
from tests.gateway.proxy_support import raw_upstream, read_head, refused_port, wait_for
from thor.events import EventEmitter
from thor.tcp import TcpConnection
from thor_gateway.operations.metrics import Metrics
from thor_gateway.proxy import forwarding, handler_from_config

Live = Any


def test_the_handshake_and_the_bytes_with_each_head_go_through(
    live_server: Callable[..., Live],
) -> None:
    with raw_upstream(switch_and_echo) as up:
        live, _ = make_proxy(live_server, [up.url])
        sock, got = open_tunnel(
            live.port, extra=b"early", fields=b"Connection: X-Secret\r\nX-Secret: 1\r\n"
        )
        with sock:
            head, _, after = got.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
            fields = {n.lower(): v for n, _, v in (line.partition(b": ") for line in lines[1:])}
            assert fields[b"upgrade"] == b"websocket"
            assert fields[b"connection"].lower() == b"upgrade"
            assert fields[b"sec-websocket-accept"] == SWITCH.split(b"Accept: ")[1].split(b"\r\n")[0]
            assert fields[b"x-up"] == b"1"
            assert fields[b"via"] == b"1.1 thor"
            # "first" came with the 101; "early" came with the request and is echoed back.
            after += recv_exactly(sock, len(b"firstearly") - len(after))
            assert after == b"firstearly"
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
        # What the upstream was asked: Upgrade offered on its hop, fields Connection named gone.
        sent = up.heads[0].partition(b"\r\n\r\n")[0].lower()
        assert sent.startswith(b"get /chat http/1.1\r\n")
        assert b"\r\nupgrade: websocket\r\n" in sent
        assert b"upgrade" in sent.split(b"\r\nconnection: ")[1].split(b"\r\n")[0]
        assert b"sec-websocket-key: " in sent
        assert b"x-secret" not in sent
        assert b"\r\nvia: 1.1 thor" in sent


def test_h2c_is_not_offered_upstream(live_server: Callable[..., Live]) -> None:
    def plain(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    with raw_upstream(plain) as up:
        # The server's own h2c upgrade off, so the request reaches the proxy as HTTP/1.1 (with
        # it on, the gateway itself answers 101 and speaks HTTP/2 to the client).
        live, _ = make_proxy(live_server, [up.url], server={"h2c_upgrade": False})
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(
                b"GET /ws/x HTTP/1.1\r\nHost: f\r\nUpgrade: h2c\r\n"
                b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            )
            assert read_head(sock).startswith(b"HTTP/1.1 204")
        sent = up.heads[0].lower()
        assert b"upgrade" not in sent
        assert b"http2-settings" not in sent


@pytest.mark.parametrize("status", [200, 400])
def test_an_answer_other_than_101_is_an_ordinary_response(
    live_server: Callable[..., Live], status: int
) -> None:
    def refuse(sock: socket.socket, head: bytes) -> None:
        sock.sendall(
            b"HTTP/1.1 %d Nope\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain" % status
        )

    with raw_upstream(refuse) as up:
        live, handler = make_proxy(live_server, [up.url])
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(handshake(live.port))
            got = read_head(sock)
            assert got.startswith(b"HTTP/1.1 %d Nope\r\n" % status)
            assert b"\r\nUpgrade:" not in got
            body = got.partition(b"\r\n\r\n")[2]
            assert body + recv_exactly(sock, 5 - len(body)) == b"plain"
            # The connection still speaks HTTP: a second request on it is answered.
            sock.sendall(b"GET /ws/again HTTP/1.1\r\nHost: f\r\n\r\n")
            assert read_head(sock).startswith(b"HTTP/1.1 %d" % status)
        assert open_tunnels(live, handler) == 0
        assert up.heads[1].startswith(b"GET /again HTTP/1.1")


def test_connect_is_refused_by_a_proxy_route(live_server: Callable[..., Live]) -> None:
    with raw_upstream(switch_and_echo) as up:
        live, _ = make_proxy(live_server, [up.url], prefix=b"")
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            assert read_head(sock).startswith(b"HTTP/1.1 405")
        assert up.connections == 0


def big_transfer(live_server: Callable[..., Live], direction: str) -> tuple[int, int, int]:
    """32 MiB one way through a tunnel whose receiver reads nothing for 0.5 s, then slowly.

    Returns (bytes received, the proxy's largest write buffer, samples taken)."""
    total = 32 << 20
    block = b"\x5a" * (1 << 20)
    received: list[int] = []

    def slow_read(sock: socket.socket, already: int = 0) -> None:
        time.sleep(0.5)  # the receiver is away: everything in between fills up
        got = already  # tunnel bytes that came in the same read as the 101 head
        sock.settimeout(10)
        while got < total:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
            if got % (4 << 20) < len(chunk):
                time.sleep(0.02)  # and slow when it reads
        received.append(got)

    def send_all(sock: socket.socket) -> None:
        for _ in range(total // len(block)):
            sock.sendall(block)

    def upstream(sock: socket.socket, head: bytes) -> None:
        sock.sendall(SWITCH)
        if direction == "up":
            slow_read(sock)
        else:
            send_all(sock)
            recv_exactly(sock, 1, timeout=10)  # until the client says it is done

    with raw_upstream(upstream) as up:
        live, handler = make_proxy(live_server, [up.url])
        watch = BufferWatch(live, handler)
        sock, got = open_tunnel(live.port)
        assert got.startswith(b"HTTP/1.1 101")
        with sock:
            sock.settimeout(10)
            if direction == "up":
                sender = threading.Thread(target=send_all, args=(sock,), daemon=True)
                sender.start()
                assert wait_for(lambda: bool(received), timeout=20)
                sender.join(10)
            else:
                slow_read(sock, len(got) - (got.index(b"\r\n\r\n") + 4))
                sock.sendall(b"!")
        watch.stop()
    return received[0], watch.peak, watch.samples


@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_slow_reader_pauses_the_other_side_in_bounded_memory(
    live_server: Callable[..., Live], direction: str
) -> None:
    got, peak, samples = big_transfer(live_server, direction)
    assert got == 32 << 20
    assert samples > 0
    # One side's buffer passes the high water mark by at most the read that crossed it.
    bound = TcpConnection.write_high_water + TcpConnection.read_bufsize
    assert peak <= bound, f"proxy buffered {peak} bytes (bound {bound})"


@pytest.mark.parametrize("side", ["client", "upstream"])
def test_an_abrupt_end_of_either_side_ends_the_other(
    live_server: Callable[..., Live], side: str
) -> None:
    upstream_saw_end = threading.Event()

    def upstream(sock: socket.socket, head: bytes) -> None:
        sock.sendall(SWITCH + b"hello")
        if side == "upstream":
            assert recv_exactly(sock, 3) == b"bye"
            reset(sock)
            return
        if wait_closed(sock, timeout=10):
            upstream_saw_end.set()

    with raw_upstream(upstream) as up:
        live, handler = make_proxy(live_server, [up.url])
        sock, got = open_tunnel(live.port)
        assert got.endswith(b"hello") or recv_exactly(sock, 5) == b"hello"
        assert wait_for(lambda: open_tunnels(live, handler) == 1)
        if side == "client":
            reset(sock)
            assert upstream_saw_end.wait(5)
        else:
            with sock:
                sock.sendall(b"bye")
                assert wait_closed(sock)
        assert wait_for(lambda: open_tunnels(live, handler) == 0)
        assert member_counts(live, handler) == [(0, 0)]


def test_a_half_close_is_passed_on(live_server: Callable[..., Live]) -> None:
    """The client's FIN reaches the upstream, which still answers before it closes."""

    def upstream(sock: socket.socket, head: bytes) -> None:
        sock.sendall(SWITCH)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.sendall(b"got " + data)  # after the client's EOF

    with raw_upstream(upstream) as up:
        live, handler = make_proxy(live_server, [up.url])
        sock, _got = open_tunnel(live.port)
        with sock:
            sock.sendall(b"all of it")
            sock.shutdown(socket.SHUT_WR)
            assert recv_exactly(sock, 13) == b"got all of it"
            assert wait_closed(sock)
        assert wait_for(lambda: open_tunnels(live, handler) == 0)


def test_an_idle_tunnel_is_closed(live_server: Callable[..., Live]) -> None:
    with raw_upstream(switch_and_echo) as up:
        live, handler = make_proxy(live_server, [up.url], tunnel_idle_timeout=0.4)
        sock, got = open_tunnel(live.port)
        with sock:
            assert (
                got.partition(b"\r\n\r\n")[2]
                + recv_exactly(sock, 5 - len(got.partition(b"\r\n\r\n")[2]))
            ) == b"first"
            # Traffic every 0.2 s keeps it open past the timeout...
            for word in (b"a", b"b", b"c"):
                time.sleep(0.2)
                sock.sendall(word)
                assert recv_exactly(sock, 1) == word
            last = time.monotonic()
            # ...and silence ends it.
            assert wait_closed(sock, timeout=5)
            quiet = time.monotonic() - last
        assert 0.35 <= quiet < 3, quiet
        assert wait_for(lambda: open_tunnels(live, handler) == 0)


def test_consistent_hashing_keeps_a_key_on_one_upstream(live_server: Callable[..., Live]) -> None:
    def named(name: bytes) -> Callable[[socket.socket, bytes], None]:
        def script(sock: socket.socket, head: bytes) -> None:
            sock.sendall(SWITCH + name)
            wait_closed(sock)

        return script

    with raw_upstream(named(b"A")) as a, raw_upstream(named(b"B")) as b:
        live, _ = make_proxy(
            live_server, [a.url, b.url], balancer="consistent_hash", hash_key="header:X-User"
        )
        seen: dict[bytes, set[bytes]] = {}
        for user in range(12):
            for _ in range(3):
                sock, got = open_tunnel(live.port, fields=b"X-User: u%d\r\n" % user)
                with sock:
                    after = got.partition(b"\r\n\r\n")[2] or recv_exactly(sock, 1)
                    seen.setdefault(b"u%d" % user, set()).add(after)
        assert all(len(names) == 1 for names in seen.values()), seen
        assert set().union(*seen.values()) == {b"A", b"B"}  # and the keys do spread


def test_tunnels_are_counted_in_the_upstream_metrics(live_server: Callable[..., Live]) -> None:
    with raw_upstream(switch_and_echo) as up:
        live, handler = make_proxy(live_server, [up.url])
        sock, got = open_tunnel(live.port, extra=b"12345")
        with sock:
            after = got.partition(b"\r\n\r\n")[2]
            assert after + recv_exactly(sock, 10 - len(after)) == b"first12345"
            sock.sendall(b"x" * 1000)
            assert len(recv_exactly(sock, 1000)) == 1000
            samples = live.call(handler.upstream_samples, "/ws")
            (values,) = samples.values()
            assert values["tunnels"] == 1
            assert values["in_flight"] == 1
        assert wait_for(lambda: open_tunnels(live, handler) == 0)
        (values,) = live.call(handler.upstream_samples, "/ws").values()
        assert values["tunnels"] == 0
        assert values["in_flight"] == 0
        assert values["requests"] == 1
        assert values["failures"] == 0
        assert values["tunnel_sent"] == 1005
        assert values["tunnel_received"] == 1010
        metrics = Metrics()
        metrics.upstreams = lambda: {"k": values}
        text = metrics.render()
        assert b"\nthor_upstream_tunnels{k} 0\n" in text
        assert b"\nthor_upstream_tunnel_sent_bytes_total{k} 1005\n" in text
        assert b"\nthor_upstream_tunnel_received_bytes_total{k} 1010\n" in text


def test_the_idle_timeout_is_a_proxy_table_setting() -> None:
    handler = handler_from_config(
        {"prefix": "/ws", "upstreams": "http://127.0.0.1:9", "tunnel-idle-timeout": 5}
    )
    assert handler.settings.tunnel_idle_timeout == 5
    handler.client.close()


def test_a_handshake_is_retried_on_another_member_when_a_connect_fails(
    live_server: Callable[..., Live],
) -> None:
    with raw_upstream(switch_and_echo) as up:
        live, handler = make_proxy(live_server, [f"http://127.0.0.1:{refused_port()}", up.url])
        for _ in range(4):  # round robin: half of them try the dead member first
            sock, got = open_tunnel(live.port)
            with sock:
                head, _, after = got.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101")
                sock.sendall(b"z")
                assert after + recv_exactly(sock, 6 - len(after)) == b"firstz"
        assert wait_for(lambda: open_tunnels(live, handler) == 0)
        samples = live.call(handler.upstream_samples, "/ws")
        assert sorted(v["failures"] for v in samples.values()) == [0, 2]
        assert sorted(member_counts(live, handler)) == [(0, 0), (0, 0)]


def test_the_proxy_shutdown_closes_open_tunnels(live_server: Callable[..., Live]) -> None:
    with raw_upstream(switch_and_echo) as up:
        live, handler = make_proxy(live_server, [up.url])
        sock, got = open_tunnel(live.port)
        with sock:
            assert got.startswith(b"HTTP/1.1 101")
            assert wait_for(lambda: open_tunnels(live, handler) == 1)
            done = threading.Event()
            live.call(handler.shutdown, lambda exc: done.set())
            assert done.wait(5)
            assert wait_closed(sock)
        assert open_tunnels(live, handler) == 0


@pytest.mark.parametrize(
    ("version", "fields", "offered"),
    [
        (b"1.1", [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")], [b"websocket"]),
        (
            b"1.1",
            [
                (b"Upgrade", b"a/1, h2c"),
                (b"Connection", b"keep-alive, upgrade"),
                (b"UPGRADE", b"b"),
            ],
            [b"a/1", b"b"],
        ),
        (b"1.1", [(b"Connection", b"Upgrade"), (b"Upgrade", b"h2c")], []),
        (b"1.0", [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")], []),
        (b"1.1", [(b"Upgrade", b"websocket")], []),  # not named in Connection: not asked
        (b"1.1", [(b"Connection", b"upgrade")], []),
    ],
)
def test_which_requests_offer_a_switch_upstream(
    version: bytes, fields: list[tuple[bytes, bytes]], offered: list[bytes]
) -> None:
    upgrades: list[bytes] = []
    out = forwarding.request_headers(
        [(b"Host", b"h"), *fields, (b"Sec-WebSocket-Key", b"k")],
        version=version,
        client=("127.0.0.1", 1),
        scheme="http",
        upstream_host=b"u",
        upgrades=upgrades,
    )
    assert upgrades == offered
    names = [n.lower() for n, _ in out]
    assert b"upgrade" not in names  # the client exchange adds it back with upgrade=
    assert b"connection" not in names
    assert b"sec-websocket-key" in names


def test_the_101_head_relayed() -> None:
    out = forwarding.switch_response_headers(
        [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Sec-WebSocket-Accept", b"a"),
            (b"Keep-Alive", b"timeout=5"),
        ],
        b"1.1",
    )
    assert out == [
        (b"Sec-WebSocket-Accept", b"a"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"upgrade"),
        (b"Via", b"1.1 thor"),
    ]


class AnsweringExchange(EventEmitter):
    """Records the response a handler gives (a request without a body: complete at once)."""

    req_complete = True

    def __init__(self) -> None:
        super().__init__()
        self.status: int | None = None

    def response_start(self, status: int, phrase: bytes, headers: Any) -> None:
        self.status = status

    def response_body(self, chunk: bytes) -> None:
        pass

    def response_done(self, trailers: Any = (), close: bool = False) -> None:
        pass


def test_a_proxy_route_refuses_connect_itself() -> None:
    """Called directly (ProxyHandler as an app, no router before it): 405, nothing sent."""
    import thor.loop
    from thor_gateway.proxy import ProxyHandler
    from thor_gateway.routing.request import Request

    loop = thor.loop.make()
    try:
        handler = ProxyHandler(["http://127.0.0.1:9"], loop=loop)
        exchange = AnsweringExchange()
        request = Request(
            b"CONNECT", b"example.com:443", b"example.com:443", b"", b"", b"", [], b"1.1",
            "http", None, None,
        )  # fmt: skip
        handler.handle(exchange, request)  # type: ignore[arg-type]
        assert exchange.status == 405
        assert handler.upstreams.members[0].requests == 0
        handler.client.close()
    finally:
        loop.close()
