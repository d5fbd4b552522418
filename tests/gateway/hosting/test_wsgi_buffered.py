"""Buffered request bodies (the default): received on the loop, then the app runs.

Over a real HttpServer on loopback (the ``wsgi_server`` fixture), plus the spool
itself in memory.  The streamed mode is covered by test_wsgi.py.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from tests.gateway.adapter_helpers import (
    body_of,
    connect,
    exchange_raw,
    read_head,
    read_until_close,
    status_of,
    wait_for,
)
from thor_gateway.hosting.wsgi_spool import SpooledBody

TEXT = [("Content-Type", "text/plain")]


def describing_app(calls: list[dict[str, Any]]) -> Any:
    """Answers the body's length, CONTENT_LENGTH and whether a chunk was seen early."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ)
        body = environ["wsgi.input"].read()
        start_response("200 OK", TEXT)
        return [b"%d:%s" % (len(body), environ.get("CONTENT_LENGTH", "-").encode())]

    return app


def test_a_chunked_body_reaches_the_app_whole_with_its_length(wsgi_server: Any) -> None:
    calls: list[dict[str, Any]] = []
    live = wsgi_server(describing_app(calls), validate=False)  # read() without a size
    with connect(live.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n6\r\nhello\n\r\n"
        )
        # The app is not called while the body is open.
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        assert calls == []
        sock.settimeout(5)
        sock.sendall(b"5\r\nworld\r\n0\r\n\r\n")
        raw = read_until_close(sock)
    assert body_of(raw) == b"11:11"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n",
    ],
    ids=["B23-content-length", "B22-chunked"],
)
def test_a_truncated_body_never_reaches_the_app(wsgi_server: Any, request_bytes: bytes) -> None:
    calls: list[dict[str, Any]] = []
    live = wsgi_server(describing_app(calls), validate=False)
    raw = exchange_raw(live.port, request_bytes, half_close=True)
    assert status_of(raw) == 400
    assert calls == []


def test_a_large_body_spills_to_a_file_and_is_read_whole(wsgi_server: Any) -> None:
    calls: list[dict[str, Any]] = []
    live = wsgi_server(describing_app(calls), validate=False)
    live.wsgi.input_memory = 4096
    body = bytes(range(256)) * 4000  # 1,024,000 bytes
    with connect(live.port) as sock:
        sock.sendall(
            b"PUT / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        raw = read_until_close(sock)
    assert body_of(raw) == b"1024000:1024000"
    assert not isinstance(calls[0]["wsgi.input"], __import__("io").BytesIO)


def test_expect_100_continue_is_answered_at_once(wsgi_server: Any) -> None:
    # As nginx does when it buffers: the server reads the body, so it asks for it.
    calls: list[dict[str, Any]] = []
    live = wsgi_server(describing_app(calls), validate=False)
    with connect(live.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        head, _ = read_head(sock)
        assert head == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        raw = read_until_close(sock)
    assert body_of(raw) == b"5:5"


def test_a_full_pool_when_the_body_completes_answers_503(wsgi_server: Any) -> None:
    release = threading.Event()
    running = threading.Semaphore(0)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        running.release()
        assert release.wait(10)
        start_response("200 OK", TEXT)
        return [b"ok"]

    live = wsgi_server(app, threads=1, max_queue=0)
    with connect(live.port) as held, connect(live.port) as late:
        # The upload's head is accepted while the pool is free...
        late.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na")
        held.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert running.acquire(timeout=5)
        # ...and its body completes while the one thread is busy.
        late.sendall(b"bc")
        head, _ = read_head(late)
        release.set()
        assert status_of(head) == 503
        assert status_of(read_until_close(held)) == 200


def test_a_streamed_body_cut_short_logs_one_line_without_traceback(
    wsgi_server: Any, caplog: Any
) -> None:
    failed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read(10)
        except OSError:
            failed.set()
            raise
        start_response("200 OK", TEXT)
        return [b"never"]

    live = wsgi_server(app)
    live.wsgi.buffer_input = False
    with caplog.at_level(logging.INFO, "thor_gateway.wsgi"):
        raw = exchange_raw(
            live.port,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc",
            half_close=True,
        )
        assert failed.wait(5)
        wait_for(lambda: caplog.records, what="the log line")
    assert status_of(raw) == 400
    records = [r for r in caplog.records if r.name == "thor_gateway.wsgi"]
    assert [r.levelno for r in records] == [logging.INFO], records  # not ERROR
    assert records[0].exc_info is None
    assert "request body of POST / incomplete" in records[0].getMessage()


# ------------------------------------------------------------------ the spool


def test_spool_in_memory_keeps_the_chunks() -> None:
    spool = SpooledBody(10)
    for chunk in (b"abc", b"def"):
        spool.feed(chunk)
    assert not spool.on_disk
    stream = spool.stream()
    assert stream.read() == b"abcdef"
    assert spool.size == 6


def test_spool_past_the_limit_goes_to_a_file_in_order() -> None:
    spool = SpooledBody(4)
    for chunk in (b"abc", b"def", b"ghi\n", b"jk"):
        spool.feed(chunk)
    assert spool.on_disk
    stream = spool.stream()
    assert stream.readline() == b"abcdefghi\n"
    assert stream.read(None) == b"jk"
    spool.close()
    assert stream.closed
    spool.close()  # twice is harmless
