"""The exchange contract (thor.http.Exchange) as an HTTP/1.1 exchange keeps it, over sockets."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import trustme

from tests.http.server_helpers import ServerThread, read_all
from thor.http import Exchange, TlsInfo
from thor.tls import server_context


def test_loop_and_addresses_are_the_servers() -> None:
    seen: list[object] = []

    def handler(ex: Exchange) -> None:
        seen.extend([ex.loop, ex.client_address, ex.server_address, ex.tls])
        ex.respond(200, "OK", [("Content-Length", "2")], b"ok")

    with (
        ServerThread(handler) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(sock).endswith(b"\r\n\r\nok")
        local = sock.getsockname()
    loop, client, server, tls = seen
    assert loop is srv.loop
    assert tuple(client[:2]) == local
    assert tuple(server[:2]) == ("127.0.0.1", srv.port)
    assert tls is None


def test_abort_sends_what_was_produced_then_cuts_the_response() -> None:
    def handler(ex: Exchange) -> None:
        ex.response_start(200, "OK", [("Content-Length", "100")])
        ex.response_body(b"partial")
        ex.abort()
        ex.abort()  # a second call does nothing

    with ServerThread(handler) as srv:
        got = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"partial"  # the connection ended 93 bytes short: never taken as whole


def test_tls_info_names_the_negotiated_protocol(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    context = server_context(str(pem), alpn=["http/1.1"])
    seen: list[TlsInfo | None] = []

    def handler(ex: Exchange) -> None:
        seen.append(ex.tls)
        ex.respond(200, "OK", [("Content-Length", "2")], b"ok")

    with ServerThread(handler, tls_context=context) as srv:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        client.set_alpn_protocols(["http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=3) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(sock).endswith(b"ok")  # type: ignore[arg-type]
            version = sock.version()
    (info,) = seen
    assert info is not None
    assert info.alpn_protocol == "http/1.1"
    assert info.version == version
    assert info.cipher
    assert info.peer_certificate is None  # the client sent none


def test_a_write_buffer_limit_holds_for_its_exchange_only() -> None:
    """set_write_buffer_limit bounds one response; the connection's marks come back as the
    exchange ends (completed or not), with no ``done`` listener added for it."""
    seen: list[tuple[str, int, int]] = []

    def marks(ex: Exchange, when: str) -> None:
        tcp = ex.http_conn.tcp_conn  # type: ignore[attr-defined]
        seen.append((when, tcp.write_high_water, tcp.write_low_water))

    def handler(ex: Exchange) -> None:
        marks(ex, "start")
        if ex.uri == b"/bound":
            ex.set_write_buffer_limit(1000)
            ex.set_write_buffer_limit(2000)  # a second bound; the first marks still return
            marks(ex, "bound")
            assert ex.listeners("done") == []  # type: ignore[attr-defined]
        if ex.uri == b"/unfinished":
            ex.set_write_buffer_limit(1000)
            ex.on("done", lambda completed: marks(ex, f"done {completed}"))
            ex.response_start(200, "OK", [("Content-Length", "10")])
            ex.abort()  # the connection ends the exchange: finish(False)
            return
        ex.respond(200, "OK", [("Content-Length", "2")], b"ok")
        marks(ex, "after")

    with (
        ServerThread(handler) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock,
    ):
        sock.sendall(b"GET /bound HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.sendall(b"GET /unfinished HTTP/1.1\r\nHost: x\r\n\r\n")
        read_all(sock)
    start = seen[0][1:]
    assert start[0] > 2000
    assert seen == [
        ("start", *start),
        ("bound", 2000, 500),
        ("after", *start),  # response_done put the marks back
        ("start", *start),  # so the next exchange on the connection is not bound
        ("after", *start),
        ("start", *start),
        ("done False", *start),  # and so did an exchange cut short, before its done
    ]
