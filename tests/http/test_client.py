"""HttpClient basics against the stdlib http.server and raw-socket servers on loopback."""

from __future__ import annotations

import socket

import pytest

import thor
import thor.loop
from thor.http import error
from thor.http.client import HttpClient
from thor.http.client.url import outgoing_headers, parse_url
from thor.testing import run_for

from .client_support import (
    fetch,
    header_value,
    raw_server,
    read_chunked,
    read_head,
    stdlib_server,
)


@pytest.fixture
def client(loop: thor.loop.Loop):  # type: ignore[no-untyped-def]
    c = HttpClient(loop)
    yield c
    c.close()


def test_get_keep_alive_and_bytes_events(loop: thor.loop.Loop, client: HttpClient) -> None:
    with stdlib_server() as srv:
        url = f"http://127.0.0.1:{srv.server_port}/a?b=1#frag"
        r = fetch(loop, client, "GET", url)
        assert r.order == ["start", "body", "done"]
        assert r.status == b"200"
        assert isinstance(r.phrase, bytes)
        assert r.body == b"GET /a?b=1 host=127.0.0.1:%d te= body=" % srv.server_port
        assert r.trailers == []
        assert client.idle_counts() == {("http", "127.0.0.1", srv.server_port): 1}


def test_thor_namespace_exports_client() -> None:
    assert thor.HttpClient is HttpClient
    assert thor.HttpClientExchange is HttpClient.exchange_class


def test_post_without_length_is_chunked(loop: thor.loop.Loop, client: HttpClient) -> None:
    with stdlib_server() as srv:
        url = f"http://127.0.0.1:{srv.server_port}/p"
        r = fetch(loop, client, b"POST", url.encode(), body=[b"hello", b" ", b"world"])
        assert r.status == b"200"
        assert r.body.endswith(b"te=chunked body=hello world")


def test_post_with_content_length(loop: thor.loop.Loop, client: HttpClient) -> None:
    with stdlib_server() as srv:
        url = f"http://127.0.0.1:{srv.server_port}/p"
        r = fetch(loop, client, "PUT", url, [("Content-Length", "5")], body=b"abcde")
        assert r.body.endswith(b"te= body=abcde")


def test_head_response_has_no_body(loop: thor.loop.Loop, client: HttpClient) -> None:
    with stdlib_server() as srv:
        r = fetch(loop, client, "HEAD", f"http://127.0.0.1:{srv.server_port}/")
        assert r.order == ["start", "done"]
        assert r.header(b"content-length") is not None
        # the connection is reusable after a HEAD: the next GET goes over it
        r2 = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.server_port}/")
        assert r2.header(b"x-port") == r.header(b"x-port")


def test_host_replaced_and_hop_by_hop_stripped(loop: thor.loop.Loop, client: HttpClient) -> None:
    seen: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        head, _ = read_head(sock)
        seen.append(head)
        sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    with raw_server(handler) as srv:
        headers = [
            ("Host", "evil.example"),
            ("Connection", "close, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers, deflate"),
            ("Upgrade", "h2c"),
            ("X-Keep", "yes"),
        ]
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/x", headers)
        assert r.status == b"204"
    head = seen[0]
    assert head.startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % srv.port)
    for gone in (b"evil", b"X-Private", b"Keep-Alive", b"Transfer-Encoding", b"Upgrade", b"close"):
        assert gone not in head
    assert header_value(head, b"te") == b"trailers"
    assert header_value(head, b"connection") == b"TE"
    assert header_value(head, b"x-keep") == b"yes"


def test_preserve_host(loop: thor.loop.Loop, client: HttpClient) -> None:
    seen: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        buf = None
        for _ in range(2):
            head, buf = read_head(sock, buf)
            seen.append(head)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    with raw_server(handler) as srv:
        url = f"http://127.0.0.1:{srv.port}/"
        fetch(loop, client, "GET", url, [("Host", "front.example")], preserve_host=True)
        ex = client.exchange()
        ex.preserve_host = True
        assert fetch(loop, client, "GET", url, []).status == b"200"  # no Host given: authority
    assert header_value(seen[0], b"host") == b"front.example"
    assert header_value(seen[1], b"host") == b"127.0.0.1:%d" % srv.port


def test_chunked_response_with_trailers(loop: thor.loop.Loop, client: HttpClient) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
        )

    with raw_server(handler) as srv:
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/", [("TE", "trailers")])
        assert r.body == b"hello world"
        assert r.trailers == [(b"X-Sum", b"42")]


def test_close_delimited_response(loop: thor.loop.Loop, client: HttpClient) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        sock.shutdown(socket.SHUT_WR)

    with raw_server(handler) as srv:
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert r.order == ["start", "body", "done"]
        assert r.body == b"all of it"
        assert client.conn_counts == {}


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(loop: thor.loop.Loop, client: HttpClient, status: int) -> None:
    def handler(sock: socket.socket) -> None:
        buf = None
        for _ in range(2):
            _, buf = read_head(sock, buf)
            sock.sendall(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)

    with raw_server(handler) as srv:
        for _ in range(2):
            r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
            assert r.status == b"%d" % status
            assert r.order == ["start", "done"]
        assert srv.accepted == 1


def test_interim_responses_and_early_hints(loop: thor.loop.Loop, client: HttpClient) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )

    with raw_server(handler) as srv:
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert r.order == ["nonfinal", "nonfinal", "start", "body", "done"]
        assert r.nonfinal[0] == (b"103", b"Early Hints", [(b"Link", b"</s.css>; rel=preload")])
        assert r.nonfinal[1][0] == b"102"


def test_ipv6_literal(loop: thor.loop.Loop, client: HttpClient) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    seen: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        head, _ = read_head(sock)
        seen.append(head)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")

    try:
        server = raw_server(handler, "::1")
        srv = server.__enter__()
    except OSError:
        pytest.skip("::1 not available")
    try:
        r = fetch(loop, client, "GET", f"http://[::1]:{srv.port}/six")
    finally:
        server.__exit__(None, None, None)
    assert r.body == b"v6"
    assert header_value(seen[0], b"host") == b"[::1]:%d" % srv.port


def test_request_trailers_sent_chunked(loop: thor.loop.Loop, client: HttpClient) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def handler(sock: socket.socket) -> None:
        _, buf = read_head(sock)
        body, trailers, _ = read_chunked(sock, buf)
        seen.append((body, trailers))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    with raw_server(handler) as srv:
        ex = client.exchange()
        from .client_support import Result

        r = Result(ex, loop)
        ex.request_start("POST", f"http://127.0.0.1:{srv.port}/", [])
        ex.request_body(b"data")
        ex.request_done([("X-Check", "ok")])
        run_for(loop, 5)
        assert r.status == b"200"
    assert seen == [(b"data", b"X-Check: ok")]


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://127.0.0.1/",
        "/relative",
        "http://user:pw@127.0.0.1/",
        "http://[::1/",
        "http://[zz::1]/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:8x/",
        "http:///nohost",
        "http://bad host/",
        "http://127.0.0.1/a b",
        "http://bücher.example/",
    ],
)
def test_bad_urls(loop: thor.loop.Loop, client: HttpClient, uri: str) -> None:
    ex = client.exchange()
    errors: list[Exception] = []
    ex.on("error", errors.append)
    ex.request_start("GET", uri, [])
    ex.request_body(b"ignored")
    ex.request_done([])
    assert errors == []  # never from inside request_start
    loop.call_soon(loop.stop)
    run_for(loop, 1)
    assert len(errors) == 1
    assert isinstance(errors[0], error.UrlError)
    assert client.conn_counts == {}


def test_invalid_header_is_an_output_error(loop: thor.loop.Loop, client: HttpClient) -> None:
    with stdlib_server() as srv:
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.server_port}/", [("X", "a\r\nb")])
        assert isinstance(r.error, error.OutputSyntaxError)
        assert r.order == ["error"]


def test_parse_url() -> None:
    url = parse_url(b"HTTPS://Example.COM?q=1")
    assert (url.scheme, url.host, url.port, url.authority, url.target) == (
        "https",
        "example.com",
        443,
        b"Example.COM",
        b"/?q=1",
    )
    v6 = parse_url(b"http://[::1]:8080/p")
    assert (v6.host, v6.port, v6.authority) == ("::1", 8080, b"[::1]:8080")


def test_outgoing_headers_expect_and_close() -> None:
    out, expect = outgoing_headers(
        [(b"Expect", b"100-continue"), (b"Content-Length", b"3")], b"h", False, keep_alive=False
    )
    assert expect
    assert out == [
        (b"Host", b"h"),
        (b"Expect", b"100-continue"),
        (b"Content-Length", b"3"),
        (b"Connection", b"close"),
    ]


def test_settings_from_subclass_and_kwargs(loop: thor.loop.Loop) -> None:
    class Slow(HttpClient):
        connect_timeout = 10.0
        max_server_conn = 2

    c = Slow(loop)
    assert (c.connect_timeout, c.max_server_conn, c.effective_read_timeout) == (10.0, 2, 10.0)
    c2 = Slow(loop, 5, read_timeout=1.5, retry_limit=0)
    assert (c2.idle_timeout, c2.read_timeout, c2.retry_limit) == (5, 1.5, 0)
    assert (c2.connect_timeout, c2.max_server_conn) == (10.0, 2)
    assert HttpClient(loop).connect_timeout == 3.0
    with pytest.raises(ValueError, match="max_server_conn"):
        HttpClient(loop, max_server_conn=0)


def test_localhost_name_resolves(loop: thor.loop.Loop, client: HttpClient) -> None:
    """Names resolve through the system resolver (/etc/hosts), every address tried in turn."""
    with stdlib_server() as srv:
        r = fetch(loop, client, "GET", f"http://localhost:{srv.server_port}/n")
        assert r.status == b"200", r.error
        assert b"host=localhost:%d" % srv.server_port in r.body
        assert client.conn_counts == {("http", "localhost", srv.server_port): 1}
