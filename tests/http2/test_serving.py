"""HTTP/2 served by HttpServer over real sockets: the h2 package as the client (prior
knowledge, TLS with ALPN, Upgrade: h2c), every stream an exchange."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.http.server_helpers import ServerThread, hello
from tests.http2.h2_socket import H2Client
from tests.http2.peer import REQUEST
from thor.http2.exchange import request_head
from thor.http2.protocol import ConnectionTerminated, DataReceived, H2Connection
from thor.tls import server_context


def echo(ex: Any) -> None:
    """Answer with what the request said: method, uri, version, a header and the body."""
    body: list[bytes] = []
    ex.on("request_body", body.append)

    def done(trailers: list[tuple[bytes, bytes]]) -> None:
        data = b"".join(body)
        fields = dict(ex.req_hdrs)
        info = b"%s %s %s host=%s cookie=%s len=%d trailers=%r" % (
            ex.method,
            ex.uri,
            ex.req_version,
            fields.get(b"host", b"-"),
            fields.get(b"cookie", b"-"),
            len(data),
            trailers,
        )
        ex.respond(200, "OK", [("Content-Type", "text/plain"), ("Connection", "keep-alive")], info)

    ex.on("request_done", done)


def test_a_request_is_an_exchange_with_version_2_host_and_cookies_joined() -> None:
    with ServerThread(echo) as srv, H2Client(srv.port) as client:
        response = client.get(
            "/a?b=1", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("x-y", "z")]
        )
    assert response.status == 200
    assert response.body == b"GET /a?b=1 2 host=localhost cookie=a=1; b=2 len=0 trailers=[]"
    names = [name for name, _ in response.headers]
    assert b"connection" not in names  # RFC 9113 §8.2.2
    assert b"date" in names
    assert (b"server", b"thor") in response.headers


def test_request_head_from_pseudo_headers() -> None:
    method, uri, headers = request_head(
        [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"h"), (b"host", b"h")]
    )
    assert (method, uri, headers) == (b"GET", b"/", [(b"host", b"h")])  # no second Host
    assert request_head([(b":method", b"CONNECT"), (b":authority", b"h:1")])[1] == b"h:1"


def test_concurrent_streams_are_multiplexed_and_answered_in_any_order() -> None:
    def later(ex: Any) -> None:
        delay = 1.0 if ex.uri == b"/0" else 0.0  # the first request is answered last

        def answer() -> None:
            ex.respond(200, "OK", [], ex.uri)

        ex.on("request_done", lambda t: ex.loop.schedule(delay, answer))

    with ServerThread(later) as srv, H2Client(srv.port) as client:
        ids = [client.request(f"/{n}") for n in range(20)]
        client.wait(lambda: all(client.responses[sid].ended for sid in ids[1:]))
        assert not client.responses[ids[0]].ended  # a slow answer holds up no other
        client.wait(lambda: client.responses[ids[0]].ended)
        bodies = [client.responses[sid].body for sid in ids]
    assert bodies == [f"/{n}".encode() for n in range(20)]


def test_large_bodies_both_ways_with_a_slow_reader() -> None:
    """The app pauses the request body (the client's window closes) and the client reads
    the response slowly (the exchange gets pause(True), later pause(False))."""
    size = 1_500_000
    pauses: list[bool] = []

    def handler(ex: Any) -> None:
        received: list[bytes] = []

        def on_body(chunk: bytes) -> None:
            received.append(chunk)
            ex.pause_request_body(True)
            ex.loop.schedule(0.002, ex.pause_request_body, False)

        def done(trailers: object) -> None:
            data = b"".join(received)[::-1]
            chunks = [data[i : i + 50_000] for i in range(0, len(data), 50_000)]

            def produce(paused: bool = False) -> None:
                pauses.append(paused)
                while not paused and chunks:  # a producer that honours pause
                    ex.response_body(chunks.pop(0))
                    paused = pauses[-1] if len(pauses) > 1 else False
                if not chunks and not ex.res_done:
                    ex.response_done()

            ex.on("pause", produce)
            ex.response_start(200, "OK", [("content-length", str(len(data)))])
            produce()

        ex.on("request_body", on_body)
        ex.on("request_done", done)

    body = bytes(range(256)) * (size // 256)
    with ServerThread(handler) as srv, H2Client(srv.port) as client:
        sid = client.request("/up", method="POST", body=body)
        client.wait(lambda: client.responses[sid].ended, timeout=30)
        got = client.responses[sid].body
    assert got == body[::-1]
    assert True in pauses  # the client's window closed on the app ...
    assert pauses.count(False) > 1  # ... and reopened


def test_trailers_both_ways_and_a_nonfinal_response() -> None:
    def handler(ex: Any) -> None:
        def done(trailers: list[tuple[bytes, bytes]]) -> None:
            ex.response_nonfinal(103, "Early Hints", [("link", "</s.css>; rel=preload")])
            ex.response_start(200, "OK", [("trailer", "grpc-status")])
            ex.response_body(b"data")
            ex.response_done([("grpc-status", "0"), ("x-got", trailers[0][1])])

        ex.on("request_done", done)

    with ServerThread(handler) as srv, H2Client(srv.port) as client:
        response = client.get(
            "/t", method="POST", body=b"x", trailers=[("x-request-trailer", "yes")]
        )
    assert response.informational[0][0] == (b":status", b"103")
    assert response.body == b"data"
    assert response.trailers == [(b"grpc-status", b"0"), (b"x-got", b"yes")]


def test_abort_resets_the_stream_and_the_connection_goes_on() -> None:
    def handler(ex: Any) -> None:
        if ex.uri == b"/cut":
            ex.response_start(200, "OK", [])
            ex.response_body(b"partial")
            ex.abort()
        else:
            ex.respond(200, "OK", [], b"whole")

    with ServerThread(handler) as srv, H2Client(srv.port) as client:
        cut = client.get("/cut")
        whole = client.get("/next")
    assert cut.body == b"partial"
    assert cut.reset == 8  # CANCEL
    assert whole.body == b"whole"


def test_an_app_error_answers_500_on_its_stream() -> None:
    def handler(ex: Any) -> None:
        raise RuntimeError("boom")

    with ServerThread(handler) as srv, H2Client(srv.port) as client:
        first, second = client.get("/"), client.get("/")
    assert first.status == second.status == 500


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, trustme.CA, Path]:
    ca = trustme.CA()
    base = tmp_path_factory.mktemp("h2tls")
    pem = base / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    return server_context(str(pem)), ca, base


def test_tls_offers_h2_by_alpn(tls: tuple[ssl.SSLContext, trustme.CA, Path]) -> None:
    context, ca, _ = tls
    seen: list[Any] = []

    def handler(ex: Any) -> None:
        seen.append((ex.scheme, ex.tls.alpn_protocol))
        ex.respond(200, "OK", [], b"secure")

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        ServerThread(handler, tls_context=context) as srv,
        H2Client(srv.port, tls=client_context) as client,
    ):
        assert client.sock.selected_alpn_protocol() == "h2"
        assert client.get("/").body == b"secure"
    assert seen == [("https", "h2")]


def test_tls_without_http2_offers_only_http11(
    tls: tuple[ssl.SSLContext, trustme.CA, Path],
) -> None:
    _, ca, base = tls
    context = server_context(str(base / "server.pem"))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        ServerThread(hello, tls_context=context, http2=False) as srv,
        socket.create_connection(("127.0.0.1", srv.port), 3) as raw,
        client_context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_upgrade_h2c_makes_the_request_stream_1() -> None:
    with ServerThread(echo) as srv, H2Client(srv.port, upgrade=True) as client:
        head = client.upgrade("/up")
        assert head.startswith(b"HTTP/1.1 101 ")
        client.wait(lambda: client.responses[1].ended)
        assert client.responses[1].body.startswith(b"GET /up 2 host=localhost")
        assert client.get("/next").status == 200  # and the connection is HTTP/2 now


def test_the_h2c_settings_turn_each_way_off() -> None:
    with ServerThread(echo, h2c=False, h2c_upgrade=False) as srv:
        refused = srv.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 505 ")
        with H2Client(srv.port, upgrade=True) as client:
            head = client.upgrade("/up")
        assert head.startswith(b"HTTP/1.1 200 ")  # Upgrade ignored, served as HTTP/1.1


def test_a_stream_whose_window_stays_closed_is_reset() -> None:
    """The zero-window stall (CVE-2019-9517): the client opens no window for the body."""

    def handler(ex: Any) -> None:
        ex.respond(200, "OK", [], b"x" * 1000)

    with (
        ServerThread(handler, write_timeout=0.3) as srv,
        H2Client(srv.port, settings={4: 0}) as client,
    ):
        response = client.get("/")
    assert response.reset == 8  # CANCEL, after write_timeout
    assert response.body == b""


def test_graceful_shutdown_sends_goaway_and_finishes_the_stream() -> None:
    """GOAWAY 2^31-1 and a PING, then the final GOAWAY; the open stream still finishes.
    (Thor's client role drives this one: the h2 package closes on the first GOAWAY.)"""

    def handler(ex: Any) -> None:
        ex.on("request_done", lambda t: ex.loop.schedule(0.3, ex.respond, 200, "OK", [], b"late"))

    client = H2Connection(client_side=True)
    client.initiate_connection()
    events: list[Any] = []
    with (
        ServerThread(handler) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock,
    ):
        client.send_headers(1, REQUEST, end_stream=True)
        sock.sendall(client.data_to_send())
        events += client.receive_data(sock.recv(65536))  # the server's preface: it has read
        srv.call(srv.server.graceful_shutdown, 5)
        while data := read_some(sock):
            events += client.receive_data(data)
            sock.sendall(client.data_to_send())  # the PING's ACK
    goaways = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert [(g.error_code, g.last_stream_id) for g in goaways] == [(0, 2**31 - 1), (0, 1)]
    body = b"".join(e.data for e in events if isinstance(e, DataReceived))
    assert body == b"late"


def read_some(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (TimeoutError, ConnectionResetError):
        return b""


def test_an_idle_connection_gets_goaway_then_closes() -> None:
    with ServerThread(hello, idle_timeout=0.2) as srv, H2Client(srv.port) as client:
        client.get("/")
        client.read_until_closed(5)
    assert client.goaway is not None
    assert client.goaway.error_code == 0


def test_a_head_response_carries_no_data() -> None:
    def handler(ex: Any) -> None:
        ex.respond(200, "OK", [("content-length", "5")], b"hello")

    with ServerThread(handler) as srv, H2Client(srv.port) as client:
        head = client.get("/", method="HEAD")
        get = client.get("/")
    assert (b"content-length", b"5") in head.headers
    assert head.body == b""
    assert get.body == b"hello"


def test_a_streamed_piece_goes_out_before_the_response_ends() -> None:
    """response_body holds its piece only until the end of the loop iteration."""

    def handler(ex: Any) -> None:
        ex.response_start(200, "OK", [])
        ex.response_body(b"first")
        ex.loop.schedule(0.5, ex.response_done)

    with ServerThread(handler) as srv, H2Client(srv.port) as client:
        sid = client.request("/")
        client.wait(lambda: client.responses[sid].body == b"first")
        assert not client.responses[sid].ended
        client.wait(lambda: client.responses[sid].ended)


def test_a_connection_window_held_shut_ends_in_goaway() -> None:
    """The stream window is open but the client never reopens the connection's."""

    def handler(ex: Any) -> None:
        ex.respond(200, "OK", [], b"x" * 100_000)

    with (
        ServerThread(handler, write_timeout=0.3) as srv,
        H2Client(srv.port, settings={4: 1 << 20}, auto_ack=False) as client,
    ):
        client.request("/")
        client.read_until_closed(10)
    assert client.goaway is not None
    assert client.goaway.error_code == 11  # ENHANCE_YOUR_CALM
    assert len(client.responses[1].body) == 65535  # what the connection window allowed


def test_a_stalled_request_body_resets_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[int] = []

    def handler(ex: Any) -> None:
        ex.on("error", lambda err: errors.append(err.status))

    with (
        caplog.at_level("INFO", logger="thor.http2.server"),
        ServerThread(handler, body_timeout=0.3) as srv,
        H2Client(srv.port) as client,
    ):
        sid = client.request("/", method="POST", end=False)
        client.wait(lambda: client.responses[sid].reset is not None)
    assert client.responses[sid].reset == 8  # CANCEL
    assert errors == [408]
    assert "request body stalled" in caplog.text
