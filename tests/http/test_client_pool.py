"""HttpClient connection pool: cap, reuse, idle timeout, queueing, staleness, cancel."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import thor.loop

from .client_support import (
    Clients,
    Result,
    fetch,
    raw_server,
    read_head,
    run_until,
    stdlib_server,
    wait_for,
)


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


def keep_alive_handler(delay: float = 0.0, body: bytes = b"ok") -> object:
    """Answer every request on the connection, after ``delay`` seconds."""

    def handler(sock: socket.socket) -> None:
        buf = None
        while True:
            try:
                head, buf = read_head(sock, buf)
            except ConnectionError:
                return
            if delay:
                time.sleep(delay)
            path = head.split(b" ")[1]
            out = body + b" " + path
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))

    return handler


def test_concurrent_requests_respect_max_server_conn(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients()
    peak: list[int] = [0]
    results: list[Result] = []
    with raw_server(keep_alive_handler(delay=0.02)) as srv:  # type: ignore[arg-type]
        for i in range(20):
            ex = client.exchange()
            results.append(Result(ex, loop, stop=False))
            ex.request_start("GET", f"http://127.0.0.1:{srv.port}/{i}", [])
            ex.request_done([])
            peak[0] = max(peak[0], sum(client.conn_counts.values()))

        def finished() -> bool:
            peak[0] = max(peak[0], sum(client.conn_counts.values()))
            return all(r.finished for r in results)

        run_until(loop, finished, 10)
        assert [r.body for r in results] == [b"ok /%d" % i for i in range(20)]
        assert srv.accepted == 6
        assert srv.max_open <= 6
        assert peak[0] == 6
        assert client.idle_counts() == {("http", "127.0.0.1", srv.port): 6}
    client.close()


def test_idle_connections_beyond_max_idle_conn_are_closed(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients(max_server_conn=6, max_idle_conn=2)
    results: list[Result] = []
    with raw_server(keep_alive_handler(delay=0.05)) as srv:  # type: ignore[arg-type]
        for i in range(6):  # six at once: six connections, all busy
            ex = client.exchange()
            results.append(Result(ex, loop, stop=False))
            ex.request_start("GET", f"http://127.0.0.1:{srv.port}/{i}", [])
            ex.request_done([])
        run_until(loop, lambda: all(r.finished for r in results), 10)
        assert [r.body for r in results] == [b"ok /%d" % i for i in range(6)]
        assert srv.accepted == 6
        assert client.idle_counts() == {("http", "127.0.0.1", srv.port): 2}
        assert sum(client.conn_counts.values()) == 2
    client.close()


def test_max_server_conn_one_serves_fifo(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients(max_server_conn=1)
    order: list[int] = []
    results = []
    with raw_server(keep_alive_handler()) as srv:  # type: ignore[arg-type]
        for i in range(5):
            ex = client.exchange()
            r = Result(ex, loop, stop=False)
            ex.on("response_done", lambda _t, i=i: order.append(i))
            results.append(r)
            ex.request_start("GET", f"http://127.0.0.1:{srv.port}/{i}", [])
            ex.request_done([])
        run_until(loop, lambda: all(r.finished for r in results))
        assert order == [0, 1, 2, 3, 4]
        assert srv.accepted == 1
    client.close()


def test_sequential_requests_reuse_one_connection(loop: thor.loop.Loop, clients: Clients) -> None:
    client = clients()
    with stdlib_server() as srv:
        ports = set()
        for i in range(10):
            r = fetch(loop, client, "GET", f"http://127.0.0.1:{srv.server_port}/{i}")
            assert r.status == b"200"
            ports.add(r.header(b"x-port"))
        assert len(ports) == 1
    client.close()


def test_idle_timeout_closes_connection(loop: thor.loop.Loop, clients: Clients) -> None:
    closed = threading.Event()

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        if sock.recv(10) == b"":
            closed.set()

    client = clients(idle_timeout=0.2)
    with raw_server(handler) as srv:
        start = time.monotonic()
        fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert client.idle_counts() == {("http", "127.0.0.1", srv.port): 1}
        run_until(loop, lambda: not client.conn_counts, 3)
        assert time.monotonic() - start >= 0.2
        assert closed.wait(3)


def test_no_idle_timeout_means_connection_close(loop: thor.loop.Loop, clients: Clients) -> None:
    heads: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        head, _ = read_head(sock)
        heads.append(head)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    client = clients(idle_timeout=0)
    with raw_server(handler) as srv:
        fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        assert client.conn_counts == {}
    assert b"\r\nConnection: close\r\n" in heads[0]


def test_server_closing_idle_connection_removes_it(loop: thor.loop.Loop, clients: Clients) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.05)  # then close, as a server's idle timeout does

    client = clients()
    with raw_server(handler) as srv:
        fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        run_until(loop, lambda: not client.conn_counts, 3)
        # the next request opens a new connection and succeeds
        assert fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/").status == b"200"
        assert srv.accepted == 2
    client.close()


def test_data_on_idle_connection_removes_it(loop: thor.loop.Loop, clients: Clients) -> None:
    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.05)
        sock.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        time.sleep(1)

    client = clients()
    with raw_server(handler) as srv:
        fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/")
        run_until(loop, lambda: not client.conn_counts, 3)


def test_stale_connection_is_skipped_without_retry(loop: thor.loop.Loop, clients: Clients) -> None:
    """The server closed the kept-alive connection before we reuse it: a new one is used."""

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        sock.shutdown(socket.SHUT_RDWR)

    client = clients(retry_limit=0)
    with raw_server(handler) as srv:
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "POST", url, body=b"1").status == b"200"
        time.sleep(0.05)  # the FIN is in our socket, unread: the loop has not run
        r = fetch(loop, client, "POST", url, body=b"2")
        assert r.status == b"200", r.error
        assert srv.accepted == 2


def test_cancel_while_queued_and_while_connected(loop: thor.loop.Loop, clients: Clients) -> None:
    got_eof = threading.Event()

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        if sock.recv(10) == b"":
            got_eof.set()

    client = clients(max_server_conn=1)
    with raw_server(handler) as srv:
        first = client.exchange()
        r1 = Result(first, loop, stop=False)
        first.on("response_body", lambda _chunk: first.cancel())
        first.request_start("GET", f"http://127.0.0.1:{srv.port}/", [])
        first.request_done([])
        second = client.exchange()
        r2 = Result(second, loop, stop=False)
        second.request_start("GET", f"http://127.0.0.1:{srv.port}/", [])
        second.request_done([])
        second.cancel()
        run_until(loop, got_eof.is_set, 5)
        assert r1.order == ["start", "body"]
        assert r2.order == []
        assert srv.accepted == 1
        run_until(loop, lambda: not client.conn_counts, 3)


def test_young_stale_connection_get_is_retried_at_once(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    """A GET on a just-closed kept-alive connection (not checked: too young) is replayed."""

    def handler(sock: socket.socket) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        sock.shutdown(socket.SHUT_RDWR)

    client = clients(retry_delay=5.0)
    with raw_server(handler) as srv:
        url = f"http://127.0.0.1:{srv.port}/"
        assert fetch(loop, client, "GET", url).status == b"200"
        time.sleep(0.05)  # the FIN is in our socket, unread
        start = time.monotonic()
        r = fetch(loop, client, "GET", url)
        assert r.status == b"200", r.error
        assert time.monotonic() - start < 2
        assert srv.accepted == 2


def test_faulty_answers_leave_no_connection_behind(loop: thor.loop.Loop, clients: Clients) -> None:
    # Issue 16, finding 4 (idle upstream sockets after a fault mix): every connection that
    # stalled, was cut mid-body or answered garbage is closed and out of the pool at once,
    # and the pooled ones close at the idle timeout; the server sees each one end.
    ended: list[bytes] = []
    lock = threading.Lock()

    def handler(sock: socket.socket) -> None:
        buf = None
        path = b""
        try:
            while True:
                head, buf = read_head(sock, buf)
                path = head.split(b" ")[1]
                if path == b"/ok":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                if path == b"/early":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                    sock.shutdown(socket.SHUT_WR)
                elif path == b"/garbage":
                    sock.sendall(b"no status line\r\n\r\n")
                sock.settimeout(5)
                while sock.recv(4096):  # /stall answers nothing: the client gives up
                    pass
                break
        except (ConnectionError, TimeoutError):
            pass
        with lock:
            ended.append(path)

    client = clients(idle_timeout=0.3, read_timeout=0.2, retry_limit=0)
    with raw_server(handler) as srv:  # type: ignore[arg-type]
        base = f"http://127.0.0.1:{srv.port}"
        for path in ("/ok", "/stall", "/ok", "/early", "/garbage", "/ok"):
            result = fetch(loop, client, "GET", base + path)
            assert (result.status == b"200" and result.body == b"ok") == (path == "/ok")
            assert sum(client.idle_counts().values()) <= 1  # only a sound one is kept
        run_until(loop, lambda: not client.conn_counts, 3)  # the idle timeout
        wait_for(lambda: len(ended) == srv.accepted, 3)
    assert sorted(ended) == sorted({b"/ok", b"/stall", b"/early", b"/garbage"})
    assert srv.accepted == 4  # the three /ok shared one connection
    assert client.pools == {}
