"""HttpServer with thor.tcp.ProxyProtocol, over real sockets on 127.0.0.1: the header's
client becomes the exchange's client address; bad, missing, slow or untrusted senders are
closed without an answer; a TLS listener reads the header before the handshake."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.http.server_helpers import ServerThread, read_all
from thor.http.server import HttpServerExchange
from thor.proxy_protocol import V2_SIGNATURE
from thor.tcp import ProxyProtocol
from thor.tls import server_context

REQUEST = b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
V1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 40001 80\r\n"


def v2_inet6(src: str, sport: int) -> bytes:
    body = (
        socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        + struct.pack("!HH", sport, 443)
        + b"\x04\x00\x02ab"  # a TLV, skipped
    )
    return V2_SIGNATURE + b"\x21\x21" + struct.pack("!H", len(body)) + body


V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"


def who(ex: HttpServerExchange) -> None:
    """Answer with the client address the exchange reports."""

    def done(trailers: object) -> None:
        body = repr(ex.client_address[:2]).encode()
        ex.response_start(200, "OK", [("Content-Length", str(len(body)))])
        ex.response_body(body)
        ex.response_done([])

    ex.on("request_done", done)


def served(port: int, *chunks: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        return read_all(sock)


def body_of(response: bytes) -> bytes:
    assert response.startswith(b"HTTP/1.1 200 "), response
    return response.partition(b"\r\n\r\n")[2]


def option(trusted: Any = None, timeout: float = 5.0) -> ProxyProtocol:
    return ProxyProtocol(trusted or (lambda address: address[0] == "127.0.0.1"), timeout)


def test_v1_and_v2_headers_give_the_exchange_the_client() -> None:
    with ServerThread(who, proxy_protocol=option()) as srv:
        assert body_of(served(srv.port, V1 + REQUEST)) == b"('203.0.113.7', 40001)"
        got = body_of(served(srv.port, v2_inet6("2001:db8::42", 5) + REQUEST))
        assert got == b"('2001:db8::42', 5)"


def test_local_and_unknown_keep_the_real_peer() -> None:
    with ServerThread(who, proxy_protocol=option()) as srv:
        for header in (V2_LOCAL, b"PROXY UNKNOWN\r\n"):
            client = body_of(served(srv.port, header + REQUEST))
            assert client.startswith(b"('127.0.0.1', ")


def test_a_header_split_across_sends_byte_by_byte() -> None:
    with ServerThread(who, proxy_protocol=option()) as srv:
        header = v2_inet6("2001:db8::9", 9)
        chunks = [header[i : i + 1] for i in range(len(header))]
        assert body_of(served(srv.port, *chunks, REQUEST)) == b"('2001:db8::9', 9)"
        assert body_of(served(srv.port, V1[:10], V1[10:] + REQUEST[:5], REQUEST[5:])).startswith(
            b"('203.0.113.7'"
        )


def test_keep_alive_requests_keep_the_headers_client() -> None:
    with ServerThread(who, proxy_protocol=option()) as srv:
        keep = REQUEST.replace(b"Connection: close\r\n", b"")
        answer = served(srv.port, V1 + keep + keep + REQUEST)
        assert answer.count(b"('203.0.113.7', 40001)") == 3


def test_an_untrusted_peer_is_closed_without_an_answer(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, "thor.tcp"),
        ServerThread(who, proxy_protocol=option(lambda address: False)) as srv,
    ):
        assert served(srv.port, V1 + REQUEST) == b""
    assert "is not a trusted proxy" in caplog.text


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (REQUEST, "Not a PROXY protocol header"),  # no header at all
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n" + REQUEST, "Bad port"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff" + REQUEST, "too long"),
        (b"PROXY TCP4 1.2.3", "closed before a complete PROXY header"),
    ],
)
def test_a_missing_or_bad_header_is_closed_and_logged(
    data: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, "thor.tcp"),
        ServerThread(who, proxy_protocol=option()) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock,
    ):
        sock.sendall(data)
        if why.startswith("closed"):
            sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b""
    assert why in caplog.text
    assert "PROXY protocol: connection from ('127.0.0.1'" in caplog.text


def test_a_client_that_sends_nothing_is_closed_at_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, "thor.tcp"),
        ServerThread(who, proxy_protocol=option(timeout=0.3)) as srv,
    ):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(V1[:8])
            assert read_all(sock) == b""  # closed by the server, well before 5 s
        assert not srv.server.tcp_server._header_reads
    assert "no complete PROXY header in time" in caplog.text


def test_without_the_option_a_header_is_a_bad_request() -> None:
    with ServerThread(who) as srv:
        assert served(srv.port, V1 + REQUEST).startswith(b"HTTP/1.1 400 ")


def test_over_tls_the_header_comes_before_the_handshake(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = server_context(str(cert_file), str(key_file))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with ServerThread(who, tls_context=context, proxy_protocol=option()) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            raw.sendall(V1)
            with client.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(REQUEST)
                answer = read_all(sock)
        assert body_of(answer) == b"('203.0.113.7', 40001)"


def test_shutdown_closes_the_connections_still_sending_their_header() -> None:
    with ServerThread(who, proxy_protocol=option()) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(V1[:10])
            served(srv.port, V1 + REQUEST)  # a full round trip: the first one is reading
            assert len(srv.server.tcp_server._header_reads) == 1
            srv.call(srv.server.shutdown)
            assert read_all(sock) == b""
        assert not srv.server.tcp_server._header_reads
