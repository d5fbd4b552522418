"""HttpClient against faulty servers: refusals, timeouts, truncation, bad framing, retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import thor.loop
from thor.http import error

from .client_support import Clients, Result, fetch, raw_server, read_exact, read_head, run_until


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answer(response: bytes, then_close: bool = False) -> object:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(response)
        if then_close:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            sock.recv(10)  # until the client closes

    return handler


def test_connection_refused(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients(retry_limit=0)
    r = fetch(loop, client, "GET", f"http://127.0.0.1:{free_port()}/")
    assert isinstance(r.error, error.ConnectError)
    assert r.error.status == 504
    assert r.order == ["error"]
    assert client.conn_counts == {}


def test_connection_refused_is_retried(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients(retry_limit=2, retry_delay=0.1)
    start = time.monotonic()
    r = fetch(loop, client, "POST", f"http://127.0.0.1:{free_port()}/", body=b"x")
    assert isinstance(r.error, error.ConnectError)
    assert time.monotonic() - start >= 0.2  # two retries, 0.1 s apart


def test_check_ip_veto(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients(check_ip=lambda ip: ip != "127.0.0.1")
    r = fetch(loop, client, "GET", f"http://127.0.0.1:{free_port()}/")
    assert isinstance(r.error, error.AccessError)


def test_read_timeout(loop: thor.loop.Loop, clients: Clients) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.recv(10)  # never answers; returns when the client closes

    client = clients(read_timeout=0.2)
    with raw_server(handler) as srv:
        start = time.monotonic()
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert isinstance(r.error, error.ReadTimeoutError)
        assert r.error.status == 504
        assert 0.2 <= time.monotonic() - start < 2
        assert srv.accepted == 1  # a timeout is not retried
        assert client.conn_counts == {}


def test_read_timeout_counts_silence_not_total_time(loop: thor.loop.Loop, clients: Clients) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
        for byte in b"abcdefgh":
            time.sleep(0.1)
            sock.sendall(bytes([byte]))
        sock.recv(10)

    client = clients(read_timeout=0.5)
    with raw_server(handler) as srv:
        start = time.monotonic()
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert r.body == b"abcdefgh", r.error
        assert time.monotonic() - start > 0.5  # longer than the timeout, in all


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", error.IncompleteMessageError),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            error.IncompleteMessageError,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", error.IncompleteMessageError),
    ],
    ids=["length", "chunked", "head"],
)
def test_close_mid_message_is_an_error_not_done(
    loop: thor.loop.Loop, clients: Clients, response: bytes, kind: type[Exception]
) -> None:
    client = clients()
    with raw_server(answer(response, then_close=True)) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert isinstance(r.error, kind)
        assert "done" not in r.order
        assert r.order[-1] == "error"
        assert srv.accepted == 1  # response bytes arrived: never retried
        assert client.conn_counts == {}


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
            error.UpstreamError,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            error.DuplicateCLError,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!", error.DuplicateCLError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", error.MalformedCLError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", error.ChunkError),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            error.ChunkError,
        ),
        (b"HTTP/2.0 200 OK\r\n\r\n", error.HttpVersionError),
        (b"SSH-2.0-OpenSSH\r\n\r\n", error.StartLineError),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", error.UpstreamError),
    ],
    ids=[
        "te+cl",
        "two-cl",
        "cl-list",
        "bad-cl",
        "bad-chunk",
        "bad-2nd-chunk",
        "http2",
        "garbage",
        "101",
    ],
)
def test_bad_framing_is_an_error(
    loop: thor.loop.Loop, clients: Clients, response: bytes, kind: type[Exception]
) -> None:
    client = clients()
    with raw_server(answer(response)) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert isinstance(r.error, kind), r.error
        # Found in the read that brought the head: the error alone, no start to take back.
        assert r.order == ["error"]
        assert client.conn_counts == {}


def test_extra_bytes_after_response_prevent_reuse(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients()
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK"
    with raw_server(answer(response)) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert r.body == b"ok"
        assert client.conn_counts == {}


def dropping_server(drops: int) -> tuple[object, list[bytes]]:
    """Closes the first ``drops`` connections after reading the head, then answers."""
    heads: list[bytes] = []
    lock = threading.Lock()

    def handler(sock: socket.socket) -> None:
        head, _ = read_head(sock)
        with lock:
            heads.append(head)
            n = len(heads)
        if n <= drops:
            return  # closed without a byte of response
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        sock.recv(10)

    return handler, heads


def test_get_retried_after_dropped_connection(loop: thor.loop.Loop, clients: Clients) -> None:
    handler, heads = dropping_server(drops=1)
    client = clients(retry_delay=0.05)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert r.body == b"ok"
        assert srv.accepted == 2
        assert heads[0] == heads[1]


def test_put_with_body_is_replayed(loop: thor.loop.Loop, clients: Clients) -> None:
    bodies: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        _head, buf = read_head(sock)
        while len(buf) < 5:
            buf += sock.recv(100)
        bodies.append(bytes(buf))
        if len(bodies) == 1:
            return
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        sock.recv(10)

    client = clients(retry_delay=0.05)
    with raw_server(handler) as srv:
        r = fetch(loop, client, "PUT", f"http://127.0.0.1:{srv.port}/", body=[b"ab", b"cde"])
        assert r.status == b"200", r.error
    assert bodies == [b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"] * 2


def test_get_gives_up_after_retry_limit(loop: thor.loop.Loop, clients: Clients) -> None:
    handler, _heads = dropping_server(drops=100)
    client = clients(retry_delay=0.05, retry_limit=2)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert isinstance(r.error, error.ConnectError)
        assert srv.accepted == 3


def test_post_is_not_retried(loop: thor.loop.Loop, clients: Clients) -> None:
    handler, _heads = dropping_server(drops=1)
    client = clients(retry_delay=0.05)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "POST", f"http://127.0.0.1:{srv.port}/", body=b"x")
        assert isinstance(r.error, error.ConnectError)
        assert srv.accepted == 1


def test_body_over_retry_body_limit_is_not_replayed(loop: thor.loop.Loop, clients: Clients) -> None:
    handler, _heads = dropping_server(drops=1)
    client = clients(retry_delay=0.05, retry_body_limit=4)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        r = fetch(loop, client, "PUT", f"http://127.0.0.1:{srv.port}/", body=[b"abc", b"defg"])
        assert isinstance(r.error, error.ConnectError)
        assert srv.accepted == 1


def reused_then_dropped() -> object:
    """Answers the first request with keep-alive, then drops the connection at the next."""

    def handler(sock: socket.socket) -> None:
        data = bytearray()
        answered = False
        while data.count(b" HTTP/1.1\r\n") < 2:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
            if not answered and b"\r\n\r\n" in data:
                answered = True
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        # the second request is closed without an answer: a server's idle-timeout race

    return handler


def test_reused_connection_dropped_get_is_retried_at_once(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients(retry_delay=5.0)  # a delayed retry would time the test out
    with raw_server(reused_then_dropped()) as srv:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "GET", url).body == b"first"
        start = time.monotonic()
        r = fetch(loop, client, "GET", url)
        assert r.body == b"first"
        assert time.monotonic() - start < 2
        assert srv.accepted == 2


def test_reused_connection_dropped_post_is_not_retried(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients(retry_delay=0.05)
    with raw_server(reused_then_dropped()) as srv:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "POST", url, body=b"1").body == b"first"
        r = fetch(loop, client, "POST", url, body=b"2")
        assert isinstance(r.error, error.ConnectError)
        assert srv.accepted == 1


def test_error_is_terminal_and_late_calls_are_ignored(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients(read_timeout=0.1)

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.recv(10)

    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop, stop=False)
        ex.request_start("GET", f"http://127.0.0.1:{srv.port}/", [])
        ex.request_done([])
        run_until(loop, lambda: r.finished)
        ex.request_body(b"late")
        ex.request_done([])
        ex.res_body_pause(False)
        ex.cancel()
        assert r.order == ["error"]


def test_listener_exception_cancels_exchange(loop: thor.loop.Loop, clients: Clients) -> None:
    loop.fatal_errors = False  # the loop logs the exception and goes on
    client = clients()
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    with raw_server(answer(response)) as srv:  # type: ignore[arg-type]
        ex = client.exchange()
        r = Result(ex, loop, stop=False)

        def explode(status: bytes, phrase: bytes, headers: object) -> None:
            raise RuntimeError("listener bug")

        ex.on("response_start", explode)
        ex.request_start("GET", f"http://127.0.0.1:{srv.port}/", [])
        ex.request_done([])
        run_until(loop, lambda: not client.conn_counts and r.order == ["start"])
        assert r.order == ["start"]  # no body, no done, no error after the exception


def test_connect_timeout(loop: thor.loop.Loop, clients: Clients) -> None:
    """A listener whose accept queue is full drops our SYN: the connect times out."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(5):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        client = clients(connect_timeout=0.3, retry_limit=0)
        start = time.monotonic()
        r = fetch(loop, client, "GET", f"http://127.0.0.1:{port}/")
        assert isinstance(r.error, error.ConnectError), r.order
        assert 0.3 <= time.monotonic() - start < 2
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_post_retried_when_nothing_was_written(loop: thor.loop.Loop, clients: Clients) -> None:
    """The connection died while the request head was still waiting for the caller: any
    method is replayed at once, as the server cannot have seen any of it."""
    count = [0]

    def handler(sock: socket.socket) -> None:
        count[0] += 1
        if count[0] == 1:
            return  # closed at once, before the client wrote anything
        _, buf = read_head(sock)
        body, _ = read_exact(sock, buf, 3)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" + body)
        sock.recv(10)

    client = clients(retry_limit=0)
    with raw_server(handler) as srv:
        ex = client.exchange()
        r = Result(ex, loop)
        ex.request_start("POST", f"http://127.0.0.1:{srv.port}/", [("Content-Length", "3")])
        run_until(loop, lambda: srv.accepted == 2)  # the first died, replaced at once
        ex.request_body(b"abc")
        ex.request_done([])
        run_until(loop, lambda: r.finished)
        assert r.body == b"abc", r.error
        assert srv.accepted == 2


def test_cancel_during_retry_delay(loop: thor.loop.Loop, clients: Clients) -> None:
    handler, _ = dropping_server(drops=100)
    client = clients(retry_delay=0.2)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        ex = client.exchange()
        r = Result(ex, loop, stop=False)
        ex.request_start("GET", f"http://127.0.0.1:{srv.port}/", [])
        ex.request_done([])
        run_until(loop, lambda: srv.accepted == 1 and not client.conn_counts)
        ex.cancel()  # waiting for its retry
        start = time.monotonic()
        run_until(loop, lambda: time.monotonic() - start > 0.5)
        assert srv.accepted == 1
        assert r.order == []
