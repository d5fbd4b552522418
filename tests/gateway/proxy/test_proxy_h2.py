"""The proxy to HTTP/2 upstreams (h2c:// URLs): trailers both ways, te: trailers passed on,
an HTTP/2 client end to end, and gRPC (grpcio's server and client) through thor-gateway.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import thor.loop
from tests.gateway.gateway_helpers import Gateway
from tests.http2.h2_socket import H2Client
from thor.http.server import HttpServer


class Upstream:
    """A Thor HttpServer (h2c on) in a thread: echoes what came, with trailers back."""

    def __init__(self) -> None:
        self.loop = thor.loop.make()
        self.server = HttpServer("127.0.0.1", 0, loop=self.loop)
        self.server.on("exchange", self._exchange)
        self.port = self.server.port
        self.seen: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def _exchange(self, ex: Any) -> None:
        body: list[bytes] = []
        ex.on("request_body", body.append)

        def done(trailers: list[tuple[bytes, bytes]]) -> None:
            self.seen.append((ex.req_version, list(ex.req_hdrs)))
            out = b"%s %r" % (b"".join(body), trailers)
            ex.response_start(200, b"OK", [(b"Content-Type", b"text/plain")])
            ex.response_body(out)
            ex.response_done([(b"x-status", b"0"), (b"x-count", b"%d" % len(body))])

        ex.on("request_done", done)

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.run_in_loop(self.loop.stop)
        self.thread.join(5)
        for conn in list(self.server.connections):
            conn.tcp_conn.abort()
        self.server.tcp_server.stop_accepting(drain_backlog=False)
        self.loop.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture(scope="module")
def gateway(upstream: Upstream) -> Iterator[Gateway]:
    gw = Gateway(
        *("-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"),
        *("--proxy", f"/=h2c://127.0.0.1:{upstream.port}"),
    )
    try:
        yield gw.wait_ready()
    finally:
        gw.stop()


def test_an_http2_client_to_an_h2c_upstream_with_trailers_both_ways(
    gateway: Gateway, upstream: Upstream
) -> None:
    with H2Client(gateway.port) as client:
        sid = client.request(
            "/t",
            method="POST",
            body=b"abc",
            headers=[("te", "trailers")],
            trailers=[("x-sum", "3")],
        )
        client.wait(lambda: client.responses[sid].ended)
        response = client.responses[sid]
    assert response.status == 200
    assert response.body == b"abc [(b'x-sum', b'3')]"
    assert response.trailers == [(b"x-status", b"0"), (b"x-count", b"1")]
    version, fields = upstream.seen[-1]
    assert version == b"2"  # HTTP/2 on the upstream's side too
    assert (b"te", b"trailers") in fields


def test_an_http11_client_gets_the_trailers_in_a_chunked_body(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in data
    assert data.endswith(b"0\r\nx-status: 0\r\nx-count: 0\r\n\r\n")


# --- gRPC -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grpc_service() -> Iterator[int]:
    pytest.importorskip("grpc")
    from apps.grpc_proxy import make_server

    server, port = make_server("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def test_grpc_through_the_gateway_unary_streaming_and_an_error_status(
    grpc_service: int,
) -> None:
    from apps.grpc_proxy import call

    gw = Gateway("-b", "127.0.0.1:0", "--proxy", f"/=h2c://127.0.0.1:{grpc_service}")
    try:
        gw.wait_ready()
        lines = call(f"127.0.0.1:{gw.port}")
    finally:
        gw.stop()
    assert lines == ["hello, world", "0 1 2 3 4", "INVALID_ARGUMENT: no such thing: x"]


def test_grpc_through_a_toml_route(grpc_service: int, tmp_path: Path) -> None:
    from apps.grpc_proxy import call

    config = tmp_path / "grpc.toml"
    config.write_text(
        f'bind = ["127.0.0.1:0"]\n\n[[proxy]]\nprefix = "/"\n'
        f'upstreams = [{{ url = "h2c://127.0.0.1:{grpc_service}", weight = 1 }}]\n'
    )
    gw = Gateway("-c", str(config))
    try:
        gw.wait_ready()
        lines = call(f"127.0.0.1:{gw.port}")
    finally:
        gw.stop()
    assert lines[2] == "INVALID_ARGUMENT: no such thing: x"


def test_metrics_count_connections_and_streams_by_protocol(
    gateway: Gateway, upstream: Upstream
) -> None:
    with H2Client(gateway.port) as client:
        sid = client.request("/m", headers=[("te", "trailers")])
        client.wait(lambda: client.responses[sid].ended)
        with socket.create_connection(("127.0.0.1", gateway.metrics_port), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            text = b""
            while chunk := sock.recv(65536):
                text += chunk
    lines = text.decode().splitlines()
    assert 'thor_connections_by_protocol{protocol="HTTP/2"} 1' in lines
    assert 'thor_requests_by_protocol_total{protocol="HTTP/2"}' in text.decode()
    member = f'route="/",upstream="h2c://127.0.0.1:{upstream.port}"'
    assert f'thor_upstream_connections{{{member},protocol="HTTP/2"}} 1' in lines
    assert f'thor_upstream_connections{{{member},protocol="HTTP/1.1"}} 0' in lines
    assert f"thor_upstream_http2_streams{{{member}}} 0" in lines
