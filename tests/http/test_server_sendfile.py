"""HttpServerExchange.response_file: a body by sendfile, framed by Content-Length only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.http.server_helpers import ServerThread
from thor.http.server import HttpServerExchange

DATA = bytes(range(256)) * 4096  # 1 MiB


class FileHandler:
    """Answers with DATA[100:-100] by response_file; records what response_file returned."""

    def __init__(self, path: Path, *, length: bool = True) -> None:
        self.path = path
        self.length = length
        self.results: list[bool] = []

    def __call__(self, ex: HttpServerExchange) -> None:
        ex.on("request_done", lambda trailers: self.answer(ex))

    def answer(self, ex: HttpServerExchange) -> None:
        count = len(DATA) - 200
        ex.response_start(200, "OK", [(b"Content-Length", b"%d" % count)] if self.length else [])
        fd = os.open(self.path, os.O_RDONLY)
        try:
            sent = ex.response_file(fd, 100, count)
        finally:
            os.close(fd)  # the connection keeps its own duplicate
        self.results.append(sent)
        if not sent:
            ex.response_body(DATA[100:-100])
        ex.response_done()


def test_response_file_then_the_next_response_in_order() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.bin"
        path.write_bytes(DATA)
        handler = FileHandler(path)
        with ServerThread(handler) as srv:
            out = srv.raw(
                b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                b"HEAD /b HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
    body = DATA[100:-100]
    head = b"HTTP/1.1 200 OK\r\n"
    first, second, third = out.split(head)[1:]
    assert first.endswith(b"\r\n\r\n" + body)
    assert second.endswith(b"\r\n\r\n")  # HEAD: sent nothing, yet said True
    assert b"Content-Length: %d" % len(body) in second
    assert third.endswith(b"\r\n\r\n" + body)
    assert handler.results == [True, True, True]


def test_without_content_length_it_declines() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.bin"
        path.write_bytes(DATA)
        handler = FileHandler(path, length=False)
        with ServerThread(handler) as srv:
            out = srv.raw(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in out
    assert handler.results == [False]
    assert out.endswith(b"0\r\n\r\n")
