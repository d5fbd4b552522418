"""The client's switch point over real sockets: a 101 hands the caller the TCP connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import thor.loop
from thor.http import error
from thor.http.client import HttpClient
from thor.tcp import TcpConnection

from .client_support import header_value, raw_server, read_head, run_until

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"


@pytest.fixture
def client(loop: thor.loop.Loop) -> Iterator[HttpClient]:
    made = HttpClient(loop)
    yield made
    made.close()


def echo_after_101(heads: list[bytes], greeting: bytes = b"") -> Any:
    """Answer 101 (with ``greeting`` in the same packet), then echo what arrives until EOF."""

    def handler(sock: socket.socket) -> None:
        head, buf = read_head(sock)
        heads.append(head)
        sock.sendall(SWITCH + greeting)
        if buf:
            sock.sendall(bytes(buf))
        while data := sock.recv(65536):
            sock.sendall(data)

    return handler


class Taker:
    """Takes the switched connection: records the leftover, echoes through, closes."""

    def __init__(self, loop: thor.loop.Loop, ex: Any, send: bytes, want: int) -> None:
        self.loop = loop
        self.events: list[str] = []
        self.leftover = b""
        self.received = b""
        self.tcp: TcpConnection | None = None
        self.send = send
        self.want = want
        ex.on("response_start", lambda status, phrase, headers: self.events.append(status))
        ex.on("response_done", lambda trailers: self.events.append("done"))
        ex.on("error", lambda err: self.events.append(f"error {err!r}"))
        ex.on("switched", self.switched)

    def switched(self, tcp: TcpConnection, leftover: bytes) -> None:
        self.events.append("switched")
        self.tcp = tcp
        self.leftover = leftover
        self.received = leftover
        tcp.on("data", self.data)
        tcp.write(self.send)

    def data(self, chunk: bytes) -> None:
        self.received += chunk
        if len(self.received) >= self.want and self.tcp is not None:
            self.tcp.abort()
            self.loop.stop()


def test_101_hands_over_the_connection_and_the_leftover(
    loop: thor.loop.Loop, client: HttpClient
) -> None:
    heads: list[bytes] = []
    greeting = b"hello from the new protocol;"
    with raw_server(echo_after_101(heads, greeting)) as srv:
        ex = client.exchange()
        taker = Taker(loop, ex, b"ping", len(greeting) + 4)
        ex.request_start(
            b"GET", f"http://127.0.0.1:{srv.port}/chat", [(b"X-Id", b"1")], upgrade=b"echo"
        )
        ex.request_done([])
        run_until(loop, lambda: taker.received.endswith(b"ping"))
        # The pool never sees the connection again: not idle, not counted.
        assert client.idle_counts() == {}
        assert client.conn_counts == {}
    assert taker.events == [b"101", "switched"]
    assert taker.leftover == greeting  # in the same packet as the 101 head
    assert taker.received == greeting + b"ping"
    head = heads[0]
    assert header_value(head, b"upgrade") == b"echo"
    assert header_value(head, b"connection") == b"Upgrade"
    assert header_value(head, b"x-id") == b"1"


def test_a_switch_nobody_takes_closes_the_connection(
    loop: thor.loop.Loop, client: HttpClient
) -> None:
    closed: list[bool] = []

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(SWITCH)
        sock.settimeout(5)
        closed.append(sock.recv(1) == b"")

    with raw_server(handler) as srv:
        ex = client.exchange()
        seen: list[bytes] = []
        ex.on("response_start", lambda status, phrase, headers: seen.append(status))
        ex.request_start(b"GET", f"http://127.0.0.1:{srv.port}/", [], upgrade="echo")
        ex.request_done([])
        run_until(loop, lambda: bool(closed))
    assert seen == [b"101"]
    assert closed == [True]
    assert client.conn_counts == {}


def test_an_upgrade_refused_is_an_ordinary_response_and_keeps_the_connection(
    loop: thor.loop.Loop, client: HttpClient
) -> None:
    connections: list[int] = []

    def handler(sock: socket.socket) -> None:
        connections.append(1)
        buf = bytearray()
        for _ in range(2):
            _, buf = read_head(sock, buf)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")

    with raw_server(handler) as srv:
        url = f"http://127.0.0.1:{srv.port}/"
        for _ in range(2):
            ex = client.exchange()
            events: list[Any] = []
            ex.on("response_done", lambda trailers, events=events: events.append("done"))
            ex.on("switched", lambda tcp, leftover, events=events: events.append("switched"))
            ex.request_start(b"GET", url, [], upgrade=b"echo")
            ex.request_done([])
            run_until(loop, lambda: bool(events))  # noqa: B023 - run before the next round
            assert events == ["done"]
    assert connections == [1]  # reused: one connection for both


def test_the_caller_can_pause_the_switched_connection(
    loop: thor.loop.Loop, client: HttpClient
) -> None:
    """Flow control comes with it: the TcpConnection's own pause and water marks."""
    heads: list[bytes] = []
    with raw_server(echo_after_101(heads)) as srv:
        ex = client.exchange()
        taker = Taker(loop, ex, b"x" * 4, 8)
        ex.request_start(b"GET", f"http://127.0.0.1:{srv.port}/", [], upgrade=b"echo")
        ex.request_done([])
        run_until(loop, lambda: len(taker.received) >= 4)
        assert taker.tcp is not None
        taker.tcp.pause(True)
        taker.tcp.write(b"y" * 4)
        # Paused: nothing is read for a while (bounded wait on the loop).
        loop.schedule(0.2, loop.stop)
        loop.run()
        assert taker.received == b"xxxx"
        taker.tcp.pause(False)
        run_until(loop, lambda: len(taker.received) >= 8)
        assert taker.received == b"xxxxyyyy"
        taker.tcp.abort()


def test_a_2xx_to_connect_hands_over_the_tunnel(loop: thor.loop.Loop, client: HttpClient) -> None:
    heads: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        head, _ = read_head(sock)
        heads.append(head)
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03tls?")
        while data := sock.recv(65536):
            sock.sendall(data)

    with raw_server(handler) as srv:
        ex = client.exchange()
        taker = Taker(loop, ex, b"!", 6)
        ex.request_start(
            b"CONNECT", f"http://127.0.0.1:{srv.port}", [], tunnel_to="origin.example:443"
        )
        ex.request_done([])
        run_until(loop, lambda: taker.received.endswith(b"!"))
        assert client.conn_counts == {}
    assert taker.events == [b"200", "switched"]
    assert taker.leftover == b"\x16\x03tls?"
    assert heads[0].startswith(b"CONNECT origin.example:443 HTTP/1.1\r\n")
    assert header_value(heads[0], b"host") == b"origin.example:443"


@pytest.mark.parametrize(
    ("method", "tunnel_to"),
    [("CONNECT", None), ("GET", "origin.example:443"), ("CONNECT", "origin.example")],
)
def test_connect_needs_a_host_and_port(
    loop: thor.loop.Loop, client: HttpClient, method: str, tunnel_to: str | None
) -> None:
    ex = client.exchange()
    errors: list[Exception] = []
    ex.on("error", errors.append)
    ex.request_start(method, "http://127.0.0.1:9/", [], tunnel_to=tunnel_to)
    run_until(loop, lambda: bool(errors))
    assert isinstance(errors[0], error.UrlError)


def test_the_docs_example_switches_and_echoes() -> None:
    root = Path(__file__).resolve().parents[2]
    example = root / "docs" / "examples" / "http_client_switch.py"
    heads: list[bytes] = []
    with raw_server(echo_after_101(heads)) as srv:
        done = subprocess.run(
            [sys.executable, str(example), f"http://127.0.0.1:{srv.port}/echo"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},  # this tree's thor, not an installed one
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "response: 101 Switching Protocols",
        "echoed: hello over the new protocol",
    ]
    assert header_value(heads[0], b"upgrade") == b"echo"
