"""The reloader's stand-in (an app that cannot be loaded answers 500 with its error) opens
connections as the gateway's listeners do: with ``--proxy-protocol``, the PROXY header
comes first and is read as one, not taken for a request line; with a certificate, TLS."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

import thor.loop
from tests.gateway.gateway_helpers import raw_exchange
from thor.http.server import HttpServer
from thor_gateway.serving.cli import build_parser, resolve
from thor_gateway.serving.reload import load_error_servers
from thor_gateway.serving.server import Listeners

V1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 40001 80\r\n"
GET = b"GET /any HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@contextmanager
def stand_in(*flags: str) -> Iterator[HttpServer]:
    argv = ["some.app:app", "-b", "127.0.0.1:0", "--header-timeout", "0.5", *flags]
    settings = resolve(build_parser().parse_args(argv), {})
    listeners = Listeners(settings)
    loop = thor.loop.make()
    servers = load_error_servers(settings, listeners, RuntimeError("no such app"), loop)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield servers[0]
    finally:
        loop.run_in_loop(loop.stop)
        thread.join(5)
        assert not thread.is_alive(), "the loop did not stop"
        for server in servers:  # the loop has stopped: this thread may tidy up
            for conn in list(server.tcp_server.active_connections):
                conn.abort()
            server.shutdown()
        listeners.close()
        loop.close()


@pytest.fixture
def with_proxy_protocol() -> Iterator[HttpServer]:
    with stand_in("--proxy-protocol") as server:
        yield server


@pytest.fixture
def without() -> Iterator[HttpServer]:
    with stand_in() as server:
        yield server


def test_the_stand_in_reads_the_proxy_header(with_proxy_protocol: HttpServer) -> None:
    for header in (V1, b""):
        got = raw_exchange(with_proxy_protocol.port, header + GET)
        if header:  # the request after the header is answered with the load error
            assert got.startswith(b"HTTP/1.1 500 "), got
            assert got.endswith(b"no such app\n")
        else:  # no header where one must come: closed unanswered, as by the gateway
            assert got == b""


def test_without_the_flag_a_proxy_header_is_no_request(without: HttpServer) -> None:
    assert raw_exchange(without.port, GET).startswith(b"HTTP/1.1 500 ")
    assert raw_exchange(without.port, V1 + GET).startswith(b"HTTP/1.1 400 ")


def test_the_stand_in_speaks_tls_on_a_tls_listener(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    certfile, keyfile = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    tls = ("--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    with (
        stand_in(*tls) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(GET)
        got = b""
        while len(got) < 12:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got.startswith(b"HTTP/1.1 500 "), got
