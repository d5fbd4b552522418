"""HttpClient speaking HTTP/2: h2c:// (prior knowledge) and https:// with ALPN h2, against
Thor's own HttpServer on the same loop; the same exchange API as HTTP/1.1."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import thor.loop
from tests.http.client_support import Clients, Result, fetch, run_until
from thor.http.server import HttpServer
from thor.http2.client import H2OriginPool, request_fields
from thor.testing import run_for
from thor.tls import client_context, server_context


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


HELD: list[Any] = []  # exchanges of /hold, whose request body is not read until resumed


def echo(ex: Any) -> None:
    """Answers with the method, target, version, body and request trailers; trailers back."""
    body: list[bytes] = []
    ex.on("request_body", body.append)
    if ex.uri == b"/hold":
        ex.pause_request_body(True)
        HELD.append(ex)

    def done(trailers: list[tuple[bytes, bytes]]) -> None:
        te = dict(ex.req_hdrs).get(b"te", b"-")
        out = b"%s %s %s te=%s %s %r" % (
            ex.method,
            ex.uri,
            ex.req_version,
            te,
            b"".join(body),
            trailers,
        )
        if ex.uri.startswith(b"/big"):
            out = b"x" * int(ex.uri[4:])
        ex.response_start(200, b"OK", [(b"Content-Type", b"text/plain")])
        ex.response_body(out)
        ex.response_done([(b"grpc-status", b"0")] if ex.uri == b"/trailers" else [])

    ex.on("request_done", done)


@pytest.fixture
def server(loop: thor.loop.Loop) -> Iterator[HttpServer]:
    srv = HttpServer("127.0.0.1", 0, loop)
    srv.on("exchange", echo)
    yield srv
    srv.shutdown()
    for conn in list(srv.connections):
        conn.tcp_conn.abort()


def test_request_fields_are_pseudo_headers_then_lowercase_without_connection_fields() -> None:
    fields = request_fields(
        b"GET",
        b"http",
        b"a:1",
        b"/p",
        [
            (b"Host", b"h:2"),
            (b"Connection", b"TE, X-Hop"),
            (b"TE", b"trailers"),
            (b"X-Hop", b"1"),
            (b"Keep-Alive", b"5"),
            (b"X-End", b"2"),
        ],
    )
    assert fields == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"h:2"),
        (b":path", b"/p"),
        (b"te", b"trailers"),
        (b"x-end", b"2"),
    ]


def test_h2c_get_post_and_trailers_on_one_connection(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients()
    base = f"h2c://127.0.0.1:{server.port}"
    got = fetch(loop, client, "GET", base + "/x?y=1", [("TE", "trailers")])
    assert got.status == b"200"
    assert got.phrase == b"OK"
    assert got.body == b"GET /x?y=1 2 te=trailers  []"
    assert isinstance(client.pools[("h2c", "127.0.0.1", server.port)], H2OriginPool)
    ex = client.exchange()
    result = Result(ex, loop)
    ex.request_start("POST", base + "/trailers", [])
    ex.request_body(b"ab")
    ex.request_body(b"cd")
    ex.request_done([("X-Sum", "4")])
    run_until(loop, lambda: result.finished)
    assert result.body == b"POST /trailers 2 te=- abcd [(b'x-sum', b'4')]"
    assert result.trailers == [(b"grpc-status", b"0")]
    assert ex.res_version == b"2"
    assert len(server.connections) == 1  # both on the same connection
    assert client.idle_counts() == {("h2c", "127.0.0.1", server.port): 1}


def test_many_concurrent_exchanges_share_one_connection(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients()
    results = []
    for i in range(30):
        ex = client.exchange()
        results.append(Result(ex, loop, stop=False))
        ex.request_start("GET", f"h2c://127.0.0.1:{server.port}/{i}", [])
        ex.request_done([])
    run_until(loop, lambda: all(r.finished for r in results))
    assert [r.body.split(b" ")[1] for r in results] == [b"/%d" % i for i in range(30)]
    assert len(server.connections) == 1


def test_a_large_body_both_ways_respects_the_windows(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients()
    size = 3 * 1024 * 1024  # over the 64 KiB stream and 1 MiB connection windows
    up = fetch(loop, client, "POST", f"h2c://127.0.0.1:{server.port}/", body=[b"u" * size])
    assert up.body.endswith(b"u" * 100 + b" []")
    assert len(up.body) > size
    down = fetch(loop, client, "GET", f"h2c://127.0.0.1:{server.port}/big{size}")
    assert len(down.body) == size


def test_read_size_bounds_each_read_of_an_h2c_connection(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients(read_size=4096)
    base = f"h2c://127.0.0.1:{server.port}"
    assert fetch(loop, client, "GET", base + "/first").status == b"200"
    pool = client.pools[("h2c", "127.0.0.1", server.port)]
    assert isinstance(pool, H2OriginPool)
    assert pool.conn is not None
    tcp = pool.conn.tcp
    assert tcp.read_bufsize == 4096
    reads: list[int] = []
    tcp.on("data", lambda data: reads.append(len(data)))
    size = 256 * 1024
    assert len(fetch(loop, client, "GET", f"{base}/big{size}").body) == size
    assert sum(reads) > size  # the body came in those reads (and the frames around it)
    assert max(reads) <= 4096


def test_a_paused_reader_holds_the_body_until_it_resumes(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients()
    ex = client.exchange()
    result = Result(ex, loop, stop=False)
    ex.on("response_start", lambda *a: ex.res_body_pause(True))
    ex.request_start("GET", f"h2c://127.0.0.1:{server.port}/big{500_000}", [])
    ex.request_done([])
    run_until(loop, lambda: result.status is not None)
    loop.schedule(0.3, loop.stop)
    run_for(loop, 2)
    assert not result.chunks  # held: not delivered, not acknowledged
    ex.res_body_pause(False)
    run_until(loop, lambda: result.finished)
    assert len(result.body) == 500_000


def test_cancel_resets_the_stream_and_the_connection_carries_on(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients()
    ex = client.exchange()
    result = Result(ex, loop, stop=False)
    ex.on("response_start", lambda *a: ex.cancel())
    ex.request_start("GET", f"h2c://127.0.0.1:{server.port}/big{1_000_000}", [])
    ex.request_done([])
    run_until(loop, lambda: result.status is not None)
    assert not result.finished
    again = fetch(loop, client, "GET", f"h2c://127.0.0.1:{server.port}/again")
    assert again.body.startswith(b"GET /again 2")
    assert len(server.connections) == 1


def test_a_refused_connection_is_an_error(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients(retry_limit=0)
    got = fetch(loop, client, "GET", "h2c://127.0.0.1:1/")
    assert got.error is not None
    assert got.order == ["error"]


def test_https_with_alpn_h2_when_the_client_offers_it(
    loop: thor.loop.Loop, clients: Clients, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    srv = HttpServer("127.0.0.1", 0, loop, tls_context=server_context(str(tmp_path / "cert.pem")))
    srv.on("exchange", echo)
    try:
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        url = f"https://localhost:{srv.port}/t"
        for http2, version in ((True, b"2"), (False, b"1.1")):
            context: ssl.SSLContext = client_context(cafile=str(ca_file))
            client = clients(tls_context=context, http2=http2)
            got = fetch(loop, client, "GET", url)
            assert got.body.startswith(b"GET /t " + version), got.body
    finally:
        srv.shutdown()
        for conn in list(srv.connections):
            conn.tcp_conn.abort()


def test_an_upload_the_server_does_not_read_pauses_the_caller(
    loop: thor.loop.Loop, clients: Clients, server: HttpServer
) -> None:
    client = clients()
    ex = client.exchange()
    result = Result(ex, loop, stop=False)
    ex.request_start("POST", f"h2c://127.0.0.1:{server.port}/hold", [])
    chunk = b"u" * 65536
    sent = 0
    for _ in range(10):  # 640 KiB against a 64 KiB stream window
        ex.request_body(chunk)
        sent += len(chunk)
    ex.request_done([])
    run_until(loop, lambda: bool(HELD) and True in result.pauses)
    assert result.pauses == [True]
    HELD.pop().pause_request_body(False)
    run_until(loop, lambda: result.finished)
    assert result.body.startswith(b"POST /hold 2 te=- ")
    assert len(result.body) > sent
