"""The switch point over real sockets: 101 and CONNECT take-overs, and the ALPN registry."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
import trustme

import thor.http.error
from thor.http.server import HttpServer, HttpServerExchange, SwitchedConnection
from thor.http.server.server import serve_h2
from thor.tcp import TcpConnection
from thor.tls import server_context

from .server_helpers import ServerThread, read_all

UPGRADE = b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n"


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 22) -> bytes:
    """Read until ``marker`` arrived (the socket's timeout bounds each wait)."""
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def echo_upgrade(ex: HttpServerExchange, on_switch: Any = None) -> None:
    """Answer 101 to the Upgrade request, then echo raw bytes."""

    def start(method: bytes, uri: bytes, headers: Any) -> None:
        ex.response_start(
            101, "Switching Protocols", [("Upgrade", "echo"), ("Connection", "Upgrade")]
        )
        switched = ex.take_over()
        conn = switched.tcp_conn
        conn.on("data", conn.write)
        conn.on("close", conn.close)
        if switched.leftover:
            conn.write(switched.leftover)
        if on_switch is not None:
            on_switch(switched)

    ex.on("request_start", start)


def test_101_then_raw_bytes_with_the_leftover_delivered() -> None:
    with (
        ServerThread(echo_upgrade) as srv,
        socket.create_connection(("127.0.0.1", srv.port), 3) as s,
    ):
        s.sendall(UPGRADE + b"sent with the head|")  # one packet: head and the new protocol
        got = read_until(s, b"|")
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(SWITCHED.rstrip(b"\r\n"))
        assert rest == b"sent with the head|"
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not HTTP any more: echoed as bytes
        assert read_until(s, b"\r\n\r\n") == b"GET / HTTP/1.1\r\n\r\n"
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b""
        assert srv.server.connections == set()  # the server let go of it


def test_a_switched_connection_reads_only_when_resumed() -> None:
    seen: list[object] = []

    def on_switch(switched: SwitchedConnection) -> None:
        conn = switched.tcp_conn
        conn.pause(True)  # stop reading: the client's bytes wait in the kernel

        def resume() -> None:
            seen.append(("echoed before resume", conn.write_buffer_size))
            conn.pause(False)

        switched.loop.schedule(0.2, resume)
        conn.on("data", lambda data: seen.append("data"))

    with (
        ServerThread(lambda ex: echo_upgrade(ex, on_switch)) as srv,
        socket.create_connection(("127.0.0.1", srv.port), 3) as s,
    ):
        s.sendall(UPGRADE)
        read_until(s, b"\r\n\r\n")
        s.sendall(b"ping|")
        assert read_until(s, b"|") == b"ping|"
    assert seen[0] == ("echoed before resume", 0)  # nothing was read while paused
    assert "data" in seen


def test_a_switched_connection_says_when_to_stop_writing() -> None:
    pauses: list[bool] = []
    size = 4 << 20

    def on_switch(switched: SwitchedConnection) -> None:
        conn = switched.tcp_conn
        conn.set_write_buffer_limits(64 * 1024)
        conn.on("pause", pauses.append)
        conn.write(b"x" * size)  # the client is not reading yet

    with (
        ServerThread(lambda ex: echo_upgrade(ex, on_switch)) as srv,
        socket.socket() as s,
    ):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: we lag
        s.settimeout(5)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(UPGRADE)
        got = read_until(s, b"\r\n\r\n")
        got = got.partition(b"\r\n\r\n")[2]
        while len(got) < size:
            chunk = s.recv(1 << 20)
            assert chunk
            got += chunk
    assert pauses == [True, False]


def test_connect_2xx_then_a_tunnel() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def start(method: bytes, uri: bytes, headers: Any) -> None:
            assert (method, uri) == (b"CONNECT", b"example.com:443")
            ex.response_start(200, "Connection Established", [])
            switched = ex.take_over()
            conn = switched.tcp_conn
            conn.write(switched.leftover.upper())
            conn.on("data", lambda data: conn.write(data.upper()))

        ex.on("request_start", start)

    with ServerThread(handler) as srv, socket.create_connection(("127.0.0.1", srv.port), 3) as s:
        s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nhello|")
        got = read_until(s, b"|")
        assert got.startswith(b"HTTP/1.1 200 Connection Established\r\n")
        assert got.endswith(b"\r\n\r\nHELLO|")
        s.sendall(b"more|")
        assert read_until(s, b"|") == b"MORE|"


def test_an_upgrade_the_handler_ignores_is_served_as_http() -> None:
    errors: list[str] = []

    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            try:
                ex.take_over()  # no 101 was sent: nothing to take over
            except thor.http.error.OutputStateError as error:
                errors.append(str(error))
            ex.respond(200, "OK", [("Content-Length", "2")], b"ok")

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        out = srv.raw(UPGRADE + b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2  # the request after it is HTTP again
    assert len(errors) == 2


class FakeH2:
    """A protocol class registered for ALPN "h2": it says hello and closes."""

    seen: list[Any] = []

    def __init__(self, server: HttpServer, tcp_conn: TcpConnection) -> None:
        self.tcp_conn = tcp_conn
        self.served = 0
        self.is_idle = True
        FakeH2.seen.append(tcp_conn.alpn_protocol)  # type: ignore[attr-defined]
        tcp_conn.on("disconnect", lambda: server.connection_closed(self))
        tcp_conn.write(b"fake h2\n")
        tcp_conn.close()

    def close(self) -> None:
        self.tcp_conn.close()

    def abort(self, err: Any) -> None:
        self.tcp_conn.abort()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("alpn")
    ca = trustme.CA()
    server, cafile = base / "server.pem", base / "ca.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(server))
    ca.cert_pem.write_to_path(str(cafile))
    return str(server), str(cafile)


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["h2", "http/1.1"], b"fake h2\n"),
        (["http/1.1"], b"HTTP/1.1 200 OK"),
        (None, b"HTTP/1.1 200 OK"),
    ],
)
def test_the_alpn_protocol_picks_the_connection_class(
    certs: tuple[str, str], offered: list[str] | None, expected: bytes
) -> None:
    server_pem, cafile = certs
    FakeH2.seen = []

    def hello(ex: HttpServerExchange) -> None:
        ex.on("request_done", lambda t: ex.respond(200, "OK", [("Content-Length", "0")]))

    context = server_context(server_pem, alpn=["h2", "http/1.1"])
    srv = ServerThread(hello, tls_context=context, protocols={**HttpServer.protocols, "h2": FakeH2})
    client = ssl.create_default_context(cafile=cafile)
    if offered:
        client.set_alpn_protocols(offered)
    result: list[bytes] = []
    with (
        srv,
        socket.create_connection(("127.0.0.1", srv.port), 3) as raw,
        client.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        result.append(read_all(s))
    assert result[0].startswith(expected)
    assert FakeH2.seen == (["h2"] if expected == b"fake h2\n" else [])
    assert HttpServer.protocols["h2"] is serve_h2  # untouched


def test_the_registry_is_public_and_names_http11_and_h2() -> None:
    from thor.http.server import H2, HTTP11, HttpServerConnection

    assert HttpServer.protocols == {HTTP11: HttpServerConnection, H2: serve_h2}


def test_what_follows_an_upgrade_answered_later_is_read_after_the_answer() -> None:
    paused: list[bool] = []

    def handler(ex: HttpServerExchange) -> None:
        def answer() -> None:
            # Reading stopped while the parser held the bytes after the Upgrade request.
            paused.append(ex.http_conn.tcp_conn._read_paused)  # type: ignore[attr-defined]
            ex.respond(200, "OK", [("Content-Length", "2")], b"ok")

        if ex.uri == b"/echo":
            ex.on("request_done", lambda trailers: ex.loop.schedule(0.1, answer))
        else:
            ex.on("request_done", lambda trailers: answer())

    with ServerThread(handler) as srv:
        out = srv.raw(UPGRADE + b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert paused[0] is True  # then /2 was read and answered: reading resumed
