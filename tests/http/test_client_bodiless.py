"""Requests without a body are serialized once and remembered: the same bytes on the wire."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import thor.loop
from thor.http import error
from thor.http.protocol import client_connection as client_exchange

from .client_support import Clients, fetch, raw_server, read_head


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


def recording_server(heads: list[bytes]) -> object:
    """Answer every request on the connection, recording the heads received."""

    def handler(sock: socket.socket) -> None:
        buf = None
        while True:
            try:
                head, buf = read_head(sock, buf)
            except (ConnectionError, TimeoutError):
                return
            heads.append(head)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return handler


def test_a_repeated_request_is_the_same_bytes_from_the_cache(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients()
    heads: list[bytes] = []
    fields = [("Accept", "a/b"), (b"X-Trace", b"7")]
    with raw_server(recording_server(heads)) as srv:  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{srv.port}/cached?q=1"
        for _ in range(3):
            r = fetch(loop, client, "GET", url, headers=fields)
            assert r.status == b"200"
            assert r.body == b"ok"
        assert srv.accepted == 1  # the connection was reused every time
    assert len(heads) == 3
    assert heads[0] == heads[1] == heads[2]
    assert heads[0].startswith(b"GET /cached?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAccept: a/b\r\nX-Trace: 7\r\n" in heads[0]
    assert any(key[:2] == (b"GET", b"/cached?q=1") for key in client_exchange._BODILESS)


def test_a_promised_body_that_never_comes_is_never_cached(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    # Content-Length: 2 and no body: the request is incomplete, so its connection cannot be
    # reused, the second time as the first (it must not come from the cache as complete).
    client = clients()
    heads: list[bytes] = []

    def handler(sock: socket.socket) -> None:
        head, _ = read_head(sock)
        heads.append(head)
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with raw_server(handler) as srv:
        url = f"http://127.0.0.1:{srv.port}/promise"
        for _ in range(2):
            r = fetch(loop, client, "GET", url, headers=[(b"Content-Length", b"2")])
            assert r.status == b"400"
        assert srv.accepted == 2
    assert not any(key[:2] == (b"GET", b"/promise") for key in client_exchange._BODILESS)


def test_invalid_fields_fail_every_time_and_are_not_cached(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients()
    with raw_server(recording_server([])) as srv:  # type: ignore[arg-type]
        for _ in range(2):
            r = fetch(
                loop, client, "GET", f"http://127.0.0.1:{srv.port}/", headers=[(b"Bad Name", b"x")]
            )
            assert isinstance(r.error, error.OutputSyntaxError)


def test_the_cache_is_bounded_and_skips_large_requests(
    loop: thor.loop.Loop, clients: Clients
) -> None:
    client = clients()
    with raw_server(recording_server([])) as srv:  # type: ignore[arg-type]
        big = [(b"Cookie", b"c" * client_exchange._BODILESS_SIZE)]
        assert (
            fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/big", headers=big).body
            == b"ok"
        )
        # (The memo is the process's: another test in this process may have sent its own
        # GET /big, so the one looked for is this one, with its large field.)
        assert not any(
            key[:2] == (b"GET", b"/big") and big[0] in key[2:] for key in client_exchange._BODILESS
        )
        for i in range(client_exchange._BODILESS_MAX + 3):
            assert fetch(loop, client, "GET", f"http://127.0.0.1:{srv.port}/{i}").body == b"ok"
            assert len(client_exchange._BODILESS) <= client_exchange._BODILESS_MAX
