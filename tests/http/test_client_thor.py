"""HttpClient against Thor's own HttpServer on the same loop, over TCP and TLS (trustme)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import thor.loop
from thor.http import error
from thor.http.server import HttpServer, HttpServerExchange
from thor.tls import client_context, server_context

from .client_support import Clients, Result, fetch, run_until


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


def echo_app(server: HttpServer, peers: set[object]) -> None:
    """Answers with the method, target and the request body; records client addresses."""

    def on_exchange(ex: HttpServerExchange) -> None:
        body: list[bytes] = []
        head: list[bytes] = []

        def start(method: bytes, uri: bytes, headers: list[tuple[bytes, bytes]]) -> None:
            peers.add(ex.client_address)
            head.append(method + b" " + uri)

        def done(trailers: list[tuple[bytes, bytes]]) -> None:
            out = head[0] + b" " + b"".join(body)
            ex.response_start(200, b"OK", [(b"Content-Length", b"%d" % len(out))])
            ex.response_body(out)
            ex.response_done([])

        ex.on("request_start", start)
        ex.on("request_body", body.append)
        ex.on("request_done", done)

    server.on("exchange", on_exchange)


@pytest.fixture
def thor_server(loop: thor.loop.Loop) -> Iterator[tuple[HttpServer, set[object]]]:
    server = HttpServer("127.0.0.1", 0, loop)
    peers: set[object] = set()
    echo_app(server, peers)
    yield server, peers
    server.shutdown()
    for conn in list(server.connections):
        conn.tcp_conn.abort()


def test_get_and_post(loop: thor.loop.Loop, clients: Clients, thor_server: tuple) -> None:
    server, peers = thor_server
    client = clients()
    url = f"http://127.0.0.1:{server.port}/x?y=1"
    assert fetch(loop, client, "GET", url).body == b"GET /x?y=1 "
    assert fetch(loop, client, "POST", url, body=[b"a", b"b"]).body == b"POST /x?y=1 ab"
    assert len(peers) == 1  # one kept-alive connection for both


def test_twenty_concurrent_requests_use_six_connections(
    loop: thor.loop.Loop, clients: Clients, thor_server: tuple
) -> None:
    server, peers = thor_server
    client = clients()
    results = []
    for i in range(20):
        ex = client.exchange()
        results.append(Result(ex, loop, stop=False))
        ex.request_start("GET", f"http://127.0.0.1:{server.port}/{i}", [])
        ex.request_done([])
    run_until(loop, lambda: all(r.finished for r in results))
    assert [r.body for r in results] == [b"GET /%d " % i for i in range(20)]
    assert len(peers) == 6


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def start_tls_server(
    loop: thor.loop.Loop, ca: trustme.CA, tmp_path: Path, *names: str
) -> tuple[HttpServer, set[object]]:
    cert = ca.issue_cert(*names)
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = server_context(str(cert_file), str(key_file))
    server = HttpServer("127.0.0.1", 0, loop, tls_context=context)
    peers: set[object] = set()
    echo_app(server, peers)
    return server, peers


@pytest.fixture
def tls_server(
    loop: thor.loop.Loop, ca: trustme.CA, tmp_path: Path
) -> Iterator[tuple[HttpServer, set[object]]]:
    server, peers = start_tls_server(loop, ca, tmp_path, "localhost", "127.0.0.1")
    yield server, peers
    stop_tls_server(server)


def stop_tls_server(server: HttpServer) -> None:
    server.shutdown()
    server.tcp_server.shutdown()  # TlsServer.shutdown also aborts unfinished handshakes
    for conn in list(server.connections):
        conn.tcp_conn.abort()


def trusting_context(ca: trustme.CA) -> ssl.SSLContext:
    context = client_context()
    ca.configure_trust(context)
    return context


def test_https_verified(
    loop: thor.loop.Loop, clients: Clients, ca: trustme.CA, tls_server: tuple
) -> None:
    server, peers = tls_server
    client = clients(tls_context=trusting_context(ca))
    for host in ("127.0.0.1", "localhost"):
        url = f"https://{host}:{server.port}/secure"
        r = fetch(loop, client, "POST", url, body=b"s")
        assert r.body == b"POST /secure s", r.error
    assert fetch(loop, client, "GET", f"https://localhost:{server.port}/").status == b"200"
    assert len(peers) == 2  # one per origin, reused


def test_https_unknown_ca_fails(loop: thor.loop.Loop, clients: Clients, tls_server: tuple) -> None:
    server, peers = tls_server
    client = clients()  # verification against the system's CAs: ours is not one of them
    r = fetch(loop, client, "GET", f"https://127.0.0.1:{server.port}/")
    assert isinstance(r.error, error.ConnectError)
    assert "TLS" in str(r.error)
    assert peers == set()


def test_https_wrong_name_fails(
    loop: thor.loop.Loop, clients: Clients, ca: trustme.CA, tmp_path: Path
) -> None:
    server, peers = start_tls_server(loop, ca, tmp_path, "other.example")
    client = clients(tls_context=trusting_context(ca), retry_limit=0)
    try:
        r = fetch(loop, client, "GET", f"https://127.0.0.1:{server.port}/")
    finally:
        stop_tls_server(server)
    assert isinstance(r.error, error.ConnectError)
    assert "TLS" in str(r.error)
    assert peers == set()
