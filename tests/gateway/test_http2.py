"""The gateway serves HTTP/2 to every app kind (h2c with prior knowledge, Upgrade: h2c),
logs the version, and --no-h2c turns it off."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.gateway.gateway_helpers import Gateway
from tests.http2.h2_socket import H2Client

APPS = "tests.gateway.h2_apps"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    gateway = Gateway(
        "-b",
        "127.0.0.1:0",
        "--mount",
        f"/wsgi={APPS}:wsgi",
        "--mount",
        f"/asgi={APPS}:asgi",
        "--mount",
        "/native=tests.gateway.gateway_apps:native",
        "--access-logfile",
        "-",
        "--lifespan",
        "off",
    )
    try:
        yield gateway.wait_ready()
    finally:
        gateway.stop()


def test_every_app_kind_over_h2c(gateway: Gateway) -> None:
    with H2Client(gateway.port) as client:
        ids = {
            "wsgi": client.request("/wsgi/x", method="POST", body=b"a" * 100_000),
            "asgi": client.request("/asgi/x", method="POST", body=b"b" * 100_000),
            "native": client.request("/native/x"),
        }
        client.wait(lambda: all(client.responses[sid].ended for sid in ids.values()))
        got = {name: client.responses[sid] for name, sid in ids.items()}
    assert json.loads(got["wsgi"].body) == {"protocol": "HTTP/2", "host": "localhost", "n": 100_000}
    assert json.loads(got["asgi"].body) == {"http_version": "2", "n": 100_000}
    assert got["asgi"].trailers == [(b"grpc-status", b"0")]  # http.response.trailers
    assert got["native"].body == b"native /native/x"
    deadline = time.monotonic() + 10
    while not any('"GET /native/x HTTP/2" 200' in line for line in gateway.stdout):
        assert time.monotonic() < deadline, gateway.stdout  # the access log, on stdout
        time.sleep(0.02)


def test_upgrade_h2c_through_the_gateway(gateway: Gateway) -> None:
    with H2Client(gateway.port, upgrade=True) as client:
        assert client.upgrade("/asgi/up").startswith(b"HTTP/1.1 101 ")
        client.wait(lambda: client.responses[1].ended)
        assert json.loads(client.responses[1].body)["http_version"] == "2"


def test_no_h2c_answers_the_preface_505() -> None:
    gateway = Gateway("-b", "127.0.0.1:0", "--no-h2c", f"{APPS}:wsgi")
    try:
        gateway.wait_ready()
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 505 ")
    finally:
        gateway.stop()
