"""HttpServer over real sockets: requests, http.client, curl and raw bytes."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests

import thor
from tests.http.server_helpers import ServerThread, hello, read_all
from thor.http.server import HttpServerExchange


def test_readme_hello_world_with_str_and_int() -> None:
    with ServerThread(hello) as srv:
        response = requests.get(srv.url + "/", timeout=5)
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["Server"] == "thor"
    assert "Date" in response.headers


def test_hello_world_with_bytes_everywhere() -> None:
    def handler(ex: HttpServerExchange) -> None:
        @thor.on(ex)
        def request_done(trailers: object) -> None:
            ex.response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])
            ex.response_body(b"Hello, world!")
            ex.response_done([])

    loop = thor.loop.make()
    server = thor.HttpServer(b"127.0.0.1", 0, loop=loop)
    server.on("exchange", handler)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        response = requests.get(f"http://127.0.0.1:{server.port}/", timeout=5)
    finally:
        loop.run_in_loop(loop.stop)
        thread.join(5)
        for conn in list(server.tcp_server.active_connections):
            conn.abort()
        server.tcp_server.stop_accepting(drain_backlog=False)
        loop.close()
    assert response.text == "Hello, world!"
    assert response.headers["Transfer-Encoding"] == "chunked"  # no Content-Length given


def test_keep_alive_reuses_one_connection() -> None:
    with ServerThread(hello) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(5):
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"Hello, world!"
        conn.close()
        assert srv.server.tcp_server.active_connections.__len__() <= 1


def test_http10_closes_unless_keep_alive_asked() -> None:
    with ServerThread(hello) as srv:
        out = srv.raw(b"GET / HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 OK\r\n")
        assert out.endswith(b"Hello, world!")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            head = sock.recv(4096)
            assert b"Connection: keep-alive\r\n" in head
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            rest = read_all(sock)
        assert rest.count(b"Hello, world!") == 1


def test_http10_without_length_is_close_delimited() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            ex.response_start(200, "OK", [])
            ex.response_body(b"abc")
            ex.response_done()

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        out = srv.raw(b"GET / HTTP/1.0\r\n\r\n")
    assert b"Connection: close\r\n" in out
    assert b"Transfer-Encoding" not in out
    assert out.endswith(b"\r\n\r\nabc")


def test_pipelined_responses_leave_in_request_order() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            def answer() -> None:
                ex.response_start(200, "OK", [("Content-Length", str(len(ex.uri)))])
                ex.response_body(ex.uri)
                ex.response_done()

            if ex.uri == b"/slow":
                ex.loop.schedule(0.2, answer)
            else:
                answer()

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        out = srv.raw(
            b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    assert out.index(b"/slow") < out.index(b"/fast") < out.index(b"/last")
    assert out.count(b"HTTP/1.1 200 OK") == 3


def test_head_response_has_no_body() -> None:
    with ServerThread(hello) as srv:
        out = srv.raw(b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 13\r\n" in out
    assert out.endswith(b"\r\n\r\n")


def test_request_body_streams_and_trailers_arrive() -> None:
    seen: list[bytes] = []

    def handler(ex: HttpServerExchange) -> None:
        ex.on("request_body", seen.append)

        def done(trailers: list[tuple[bytes, bytes]]) -> None:
            body = b"%d %r" % (sum(map(len, seen)), trailers)
            ex.response_start(200, "OK", [("Content-Length", str(len(body)))])
            ex.response_body(body)
            ex.response_done()

        ex.on("request_done", done)

    def chunks():  # requests sends a generator chunked
        for _ in range(10):
            yield b"x" * 1000

    with ServerThread(handler) as srv:
        response = requests.post(srv.url + "/up", data=chunks(), timeout=5)
        assert response.text.startswith("10000 ")
        out = srv.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n"
        )
    assert out.endswith(b"3 [(b'X-Sum', b'1')]")


def test_100_continue_sent_when_the_body_is_read() -> None:
    with ServerThread(hello) as srv, socket.create_connection(("127.0.0.1", srv.port), 3) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abc")
        assert s.recv(4096).endswith(b"Hello, world!")


def test_100_continue_waits_while_the_handler_pauses_the_body() -> None:
    def handler(ex: HttpServerExchange) -> None:
        ex.pause_request_body(True)
        ex.loop.schedule(0.3, ex.pause_request_body, False)
        hello(ex)

    with ServerThread(handler) as srv, socket.create_connection(("127.0.0.1", srv.port), 3) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        s.settimeout(0.15)
        with pytest.raises(TimeoutError):
            s.recv(100)
        s.settimeout(3)
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_early_final_response_skips_100_and_closes() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def start(method: bytes, uri: bytes, headers: object) -> None:
            ex.response_start(413, "Content Too Large", [("Content-Length", "0")])
            ex.response_done()

        ex.on("request_start", start)

    with ServerThread(handler) as srv:
        out = srv.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99\r\nExpect: 100-continue\r\n\r\n"
        )
    assert out.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in out
    assert b"Connection: close" in out


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"400",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", b"501"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\nHost: a\n\n", b"400"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 40000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", b"413"),
        (b"CONNECT victim:443 HTTP/1.1\r\nHost: victim:443\r\n\r\n", b"405"),
    ],
)
def test_bad_requests_get_their_status_and_close(request_bytes: bytes, status: bytes) -> None:
    calls: list[bytes] = []

    def handler(ex: HttpServerExchange) -> None:
        calls.append(ex.uri)
        hello(ex)

    with ServerThread(handler) as srv:
        out = srv.raw(request_bytes)
    assert out.startswith(b"HTTP/1.1 " + status + b" "), out[:80]
    assert b"Connection: close\r\n" in out
    assert out.count(b"HTTP/1.1 ") == 1  # nothing smuggled after it
    assert calls in ([], [b"victim:443"])


def test_body_limit_applies_to_chunked_bodies_as_they_stream() -> None:
    with ServerThread(hello, max_body_size=10) as srv:
        out = srv.raw(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 413 ")
        out = srv.raw(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 413 ")


def test_handler_exception_gives_500_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(ex: HttpServerExchange) -> None:
        if ex.uri == b"/boom":
            raise RuntimeError("boom")
        hello(ex)

    with ServerThread(handler) as srv:
        assert requests.get(srv.url + "/boom", timeout=5).status_code == 500
        assert requests.get(srv.url + "/", timeout=5).text == "Hello, world!"
    assert "boom" in caplog.text


def test_exception_after_response_start_aborts_the_connection() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            ex.response_start(200, "OK", [("Content-Length", "100")])
            ex.response_body(b"partial")
            raise RuntimeError("late failure")

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        out = srv.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    # The client sees a short body and a closed connection, never a complete message.
    assert out.startswith(b"HTTP/1.1 200 OK") or out == b""
    assert len(out.partition(b"\r\n\r\n")[2]) < 100


def test_idle_connections_are_closed_after_idle_timeout() -> None:
    with (
        ServerThread(hello, idle_timeout=0.2) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock,
    ):
        start = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - start < 2


def test_slowloris_head_gets_408() -> None:
    with (
        ServerThread(hello, header_timeout=0.3) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock,
    ):
        for piece in (b"GET / HTTP/1.1\r\n", b"Host: a\r\n", b"X-A: 1\r\n"):
            sock.sendall(piece)
            time.sleep(0.12)
        out = read_all(sock)
    assert out.startswith(b"HTTP/1.1 408 ")


def test_stalled_body_gets_408_and_the_handler_an_error() -> None:
    errors: list[object] = []

    def handler(ex: HttpServerExchange) -> None:
        ex.on("error", errors.append)
        hello(ex)

    with ServerThread(handler, body_timeout=0.3) as srv:
        out = srv.raw(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 408 ")
    assert len(errors) == 1


def test_truncated_body_is_an_error_never_a_request_done() -> None:
    events: list[str] = []

    def handler(ex: HttpServerExchange) -> None:
        ex.on("error", lambda err: events.append(type(err).__name__))
        ex.on("request_done", lambda trailers: events.append("done"))

    with ServerThread(handler) as srv, socket.create_connection(("127.0.0.1", srv.port), 3) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        s.shutdown(socket.SHUT_WR)
        out = read_all(s)
    assert out.startswith(b"HTTP/1.1 400 ")
    assert events == ["IncompleteMessageError"]


def test_connection_limit_answers_503() -> None:
    with (
        ServerThread(hello, max_connections=1) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=3) as first,
    ):
        first.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert first.recv(4096).endswith(b"Hello, world!")
        out = srv.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503 ")


def test_server_and_date_headers_are_settings() -> None:
    with ServerThread(hello, server_header=b"", date_header=False) as srv:
        response = requests.get(srv.url, timeout=5)
    assert "Server" not in response.headers
    assert "Date" not in response.headers


def test_invalid_response_headers_never_reach_the_wire() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            ex.response_start(200, "OK", [("X-Evil", "a\r\nSet-Cookie: owned=1")])
            ex.response_done()

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        out = srv.raw(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500 ")
    assert b"owned" not in out


def test_request_body_backpressure_stops_reading() -> None:
    received: list[int] = []

    def handler(ex: HttpServerExchange) -> None:
        def body(chunk: bytes) -> None:
            received.append(len(chunk))
            if sum(received) > 1 << 20:
                ex.pause_request_body(True)  # the app stops consuming

        ex.on("request_body", body)

    with (
        ServerThread(handler) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock,
    ):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n")
        sock.settimeout(1.0)
        sent = send_until_blocked(sock)
    # What the app got is bounded by what was read before the pause, not by what was sent.
    assert sum(received) < 4 << 20
    assert sent < 64 << 20


def send_until_blocked(sock: socket.socket) -> int:
    """Send until a send times out; 1.3 GB at most (the kernel buffers fill long before)."""
    sent = 0
    block = b"x" * 65536
    for _ in range(20000):
        try:
            sent += sock.send(block)
        except TimeoutError:
            return sent
    raise AssertionError("the server never stopped reading")


def test_response_backpressure_pauses_the_handler() -> None:
    pauses: list[bool] = []
    total = 256 << 20

    def handler(ex: HttpServerExchange) -> None:
        state = {"sent": 0, "paused": False}
        block = b"y" * 65536

        def pump() -> None:
            while not state["paused"] and state["sent"] < total:
                ex.response_body(block)
                state["sent"] += len(block)
            if state["sent"] >= total and not ex.res_done:
                ex.response_done()

        def pause(paused: bool) -> None:
            pauses.append(paused)
            state["paused"] = paused
            if not paused:
                pump()

        def done(trailers: object) -> None:
            ex.response_start(200, "OK", [("Content-Length", str(total))])
            pump()

        ex.on("pause", pause)
        ex.on("request_done", done)

    with ServerThread(handler) as srv, socket.create_connection(("127.0.0.1", srv.port), 5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)  # a slow reader: the server must pause the handler meanwhile
        assert pauses[:1] == [True]
        got = len(read_all(s))
    assert got > total  # head + the whole body
    assert False in pauses


def test_graceful_shutdown_finishes_in_flight_and_closes_idle() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            def answer() -> None:
                ex.response_start(200, "OK", [("Content-Length", "4")])
                ex.response_body(b"late")
                ex.response_done()

            if ex.uri == b"/slow":
                ex.loop.schedule(0.3, answer)
            else:
                hello_now(ex)

        ex.on("request_done", done)

    def hello_now(ex: HttpServerExchange) -> None:
        ex.response_start(200, "OK", [("Content-Length", "2")])
        ex.response_body(b"ok")
        ex.response_done()

    stopped = threading.Event()
    with ServerThread(handler) as srv:
        srv.server.on("stop", stopped.set)
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert idle.recv(4096).endswith(b"ok")
        busy = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.1)
        draining = threading.Event()
        srv.call(lambda: (srv.server.graceful_shutdown(5.0), draining.set()))
        assert draining.wait(3)
        # The idle keep-alive connection's next request is answered, then it is closed
        # (tests/http/test_server_drain.py).
        idle.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert b"\r\nConnection: close\r\n" in read_all(idle)
        out = read_all(busy)
        assert out.endswith(b"late")
        assert b"Connection: close" in out
        assert stopped.wait(3)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=1)
        idle.close()
        busy.close()


def test_client_leaving_mid_response_gives_error_and_done_false() -> None:
    outcome: list[object] = []
    gone = threading.Event()

    def handler(ex: HttpServerExchange) -> None:
        ex.on("error", lambda err: outcome.append(type(err).__name__))
        ex.on("done", lambda completed: (outcome.append(completed), gone.set()))

        def done(trailers: object) -> None:
            ex.response_start(200, "OK", [("Content-Length", "1000")])

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            sock.recv(100)
        assert gone.wait(3)
    assert False in outcome
    assert "ClientGoneError" in outcome


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_upload_with_expect_continue() -> None:
    sizes: list[int] = []

    def handler(ex: HttpServerExchange) -> None:
        ex.on("request_body", lambda chunk: sizes.append(len(chunk)))

        def done(trailers: object) -> None:
            body = str(sum(sizes)).encode()
            ex.response_start(200, "OK", [("Content-Length", str(len(body)))])
            ex.response_body(body)
            ex.response_done()

        ex.on("request_done", done)

    with ServerThread(handler) as srv:
        result = subprocess.run(
            ["curl", "-s", "--max-time", "5", "--data-binary", "@-", srv.url + "/"],
            input=b"z" * 2_000_000,
            capture_output=True,
            timeout=10,
            check=True,
        )
    assert result.stdout == b"2000000"


def test_answering_from_request_start_keeps_the_connection() -> None:
    def handler(ex: HttpServerExchange) -> None:
        def start(method: bytes, uri: bytes, headers: object) -> None:
            ex.response_start(200, "OK", [("Content-Length", "2")])
            ex.response_body(b"ok")
            ex.response_done()

        ex.on("request_start", start)

    with ServerThread(handler) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(3):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.read() == b"ok"
            assert response.getheader("Connection") is None  # kept alive
        conn.close()


def test_respond_from_outside_dispatch_sends_at_once() -> None:
    """respond() from a timer sends the whole response without a flush left scheduled."""
    seen: list[object] = []

    def handler(ex: HttpServerExchange) -> None:
        def answer() -> None:
            ex.respond(200, "OK", [("Content-Length", "5")], b"later")
            conn = ex.http_conn
            seen.append((conn._flush_scheduled, conn._out, list(conn.loop._ready)))

        ex.on("request_done", lambda trailers: conn_loop(ex).schedule(0.01, answer))

    def conn_loop(ex: HttpServerExchange) -> thor.loop.Loop:
        return ex.loop

    with ServerThread(handler) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(2):
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"later"
        conn.close()
    assert seen == [(False, [], []), (False, [], [])]


def test_respond_after_an_error_leaves_no_output_held() -> None:
    errors: list[str] = []

    def handler(ex: HttpServerExchange) -> None:
        def answer(trailers: object) -> None:
            ex.response_start(200, "OK", [("Content-Length", "2")])
            try:
                ex.respond(200, "OK", [("Content-Length", "2")], b"no")
            except thor.http.error.OutputStateError as error:
                errors.append(str(error))
            ex.response_body(b"ok")
            ex.response_done()

        ex.on("request_done", answer)

    with ServerThread(handler) as srv:
        assert requests.get(srv.url + "/", timeout=5).text == "ok"
    assert errors
    assert "twice" in errors[0]


def test_own_date_and_server_are_kept_when_the_same_fields_come_again() -> None:
    # The server remembers field lists it has seen (with whether they hold Date and
    # Server): each response here, the first and the repeats, has one Date and one Server.
    def handler(ex: HttpServerExchange) -> None:
        def done(trailers: object) -> None:
            if ex.uri == b"/own":
                fields = [(b"Date", b"Thu, 01 Jan 2026 00:00:00 GMT"), (b"sErVeR", b"mine")]
            else:  # str fields, converted each time
                fields = [("Content-Type", "text/plain"), ("X-Kind", "str")]
            ex.response_start(200, "OK", [*fields, (b"Content-Length", b"2")])
            ex.response_body(b"ok")
            ex.response_done([])

        ex.on("request_done", done)

    with ServerThread(handler) as srv, socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.settimeout(5)
        for path in (b"/own", b"/own", b"/str", b"/own", b"/str"):
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
            received = b""
            while not received.endswith(b"\r\n\r\nok"):
                received += sock.recv(4096)
            head = received.split(b"\r\n\r\n")[0].lower()
            assert head.count(b"\r\ndate: ") == 1, head
            assert head.count(b"\r\nserver: ") == 1, head
            if path == b"/own":
                assert b"\r\ndate: thu, 01 jan 2026 00:00:00 gmt" in head
                assert b"\r\nserver: mine" in head
            else:
                assert b"\r\nx-kind: str" in head
                assert b"\r\nserver: thor" in head
