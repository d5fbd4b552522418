"""WSGI adapter responses over a live HttpServer: start_response, write, close, errors.

Apps run under ``wsgiref.validate.validator`` (the ``wsgi_server`` fixture) unless a
test says why not, and warnings are errors.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest
import requests

from tests.gateway.adapter_helpers import (
    connect,
    exchange_raw,
    read_head,
    status_of,
    wait_for,
)

TEXT = [("Content-Type", "text/plain")]


def test_start_response_exc_info_before_headers(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("late problem")
        except ValueError:
            import sys

            start_response("502 Bad Gateway", TEXT, sys.exc_info())
        return [b"replaced"]

    live = wsgi_server(app)
    response = requests.get(live.url + "/", timeout=5)
    assert (response.status_code, response.text) == (502, "replaced")


def test_start_response_exc_info_after_headers_reraises_and_aborts(
    wsgi_server: Any, caplog: Any
) -> None:
    reraised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", TEXT)
        write(b"partial")
        try:
            raise KeyError("after headers")
        except KeyError:
            import sys

            try:
                start_response("500 Oops", TEXT, sys.exc_info())
            except KeyError as exc:
                reraised.append(exc)
                raise
        return []

    live = wsgi_server(app, validate=False)  # the validator rejects exc_info after write()
    with caplog.at_level(logging.ERROR, "thor_gateway.wsgi"):
        raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reraised
    assert isinstance(reraised[0], KeyError)
    # The connection is aborted: the client gets the head and "partial" or, when the
    # abort overtakes the corked output, nothing; never a complete response.
    assert raw == b"" or status_of(raw) == 200
    assert not raw.endswith(b"0\r\n\r\n"), "an aborted response must not look complete"
    assert "error in WSGI app" in caplog.text


def test_start_response_twice_without_exc_info_is_an_error(wsgi_server: Any) -> None:
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            start_response("201 Created", TEXT)
        except Exception as exc:
            errors.append(exc)
        return [b"ok"]

    live = wsgi_server(app, validate=False)  # the validator would assert first
    assert requests.get(live.url + "/", timeout=5).text == "ok"
    assert errors


def test_write_callable(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"one,")
        write(b"two,")
        return [b"three"]

    live = wsgi_server(app)
    assert requests.get(live.url + "/", timeout=5).text == "one,two,three"


class ClosingBody:
    def __init__(self, chunks: Any, closed: threading.Event) -> None:
        self._chunks = iter(chunks)
        self._closed = closed

    def __iter__(self) -> ClosingBody:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self._closed.set()


def test_close_is_called_after_a_normal_response(wsgi_server: Any) -> None:
    closed = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        start_response("200 OK", TEXT)
        return ClosingBody([b"a", b"b"], closed)

    live = wsgi_server(app)
    assert requests.get(live.url + "/", timeout=5).text == "ab"
    assert closed.wait(5)


def test_close_is_called_when_iteration_fails(wsgi_server: Any, caplog: Any) -> None:
    closed = threading.Event()

    def boom() -> Any:
        yield b"start"
        raise RuntimeError("mid-stream")

    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        start_response("200 OK", TEXT)
        return ClosingBody(boom(), closed)

    live = wsgi_server(app)
    with caplog.at_level(logging.ERROR, "thor_gateway.wsgi"):
        raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed.wait(5)
    assert b"start" in raw
    assert not raw.endswith(b"0\r\n\r\n")
    assert "mid-stream" in caplog.text


def test_close_is_called_when_the_client_disconnects(wsgi_server: Any) -> None:
    closed = threading.Event()
    produced = [0]

    def endless() -> Any:
        while True:
            produced[0] += 1
            yield b"x" * 65536

    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        start_response("200 OK", TEXT)
        return ClosingBody(endless(), closed)

    live = wsgi_server(app)
    with connect(live.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        read_head(sock)
        wait_for(lambda: produced[0] > 3, what="the app to produce")
    assert closed.wait(10), "close() not called after the client left"


def test_app_exception_before_start_is_500_with_traceback(wsgi_server: Any, caplog: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise ZeroDivisionError("app bug")

    live = wsgi_server(app)
    with caplog.at_level(logging.ERROR, "thor_gateway.wsgi"):
        response = requests.get(live.url + "/x", timeout=5)
    assert response.status_code == 500
    assert "app bug" not in response.text
    wait_for(lambda: "ZeroDivisionError" in caplog.text, what="the traceback in the log")


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Type", "text/plain"), ("Foo", "x\r\nBar: y")],
        [("Content-Type", "text/plain"), ("Foo", "x\nBar: y")],
        [("Content-Type", "text/plain"), ("Foo", "nul\x00")],
        [("Content-Type", "text/plain"), ("Bad Name", "v")],
        [("Content-Type", "text/plain"), ("Bad:Name", "v")],
        [("Content-Type", "text/plain"), ("Connection", "close")],
        [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")],
        [("Content-Type", "text/plain"), ("Content-Length", "abc")],
        [("Content-Type", "text/plain"), ("Snow", "\u2603")],
    ],
)
def test_invalid_app_headers_are_500_and_nothing_injected(
    wsgi_server: Any, caplog: Any, headers: list[tuple[str, str]]
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"body"]

    live = wsgi_server(app, validate=False)  # the validator itself rejects some of these
    with caplog.at_level(logging.ERROR, "thor_gateway.wsgi"):
        raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 500
    assert b"Bar" not in raw
    assert b"Foo" not in raw
    assert b"body" not in raw
    wait_for(lambda: "error in WSGI app" in caplog.text, what="the log line")


def test_invalid_app_header_swallowed_by_the_app_is_still_500(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            start_response("200 OK", [("Foo", "a\r\nb")])
        except Exception:
            pass
        return [b"body"]

    live = wsgi_server(app, validate=False)
    assert requests.get(live.url + "/", timeout=5).status_code == 500


@pytest.mark.parametrize(
    "status", ["200", "200OK", "99 Low", "600 High", "200 OK\r\nX: y", b"200 OK"]
)
def test_invalid_status_is_500(wsgi_server: Any, status: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, TEXT)
        return [b"body"]

    live = wsgi_server(app, validate=False)
    raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 500
    assert b"X: y" not in raw


def test_head_has_no_body(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        yield b"hello"

    live = wsgi_server(app)
    raw = exchange_raw(live.port, b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 200
    assert b"Content-Length: 5\r\n" in raw
    assert raw.endswith(b"\r\n\r\n")


def test_head_with_list_body_gets_its_length(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"hello"]

    live = wsgi_server(app, validate=False)
    raw = exchange_raw(live.port, b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 5\r\n" in raw
    assert raw.endswith(b"\r\n\r\n")


def test_file_wrapper(wsgi_server: Any, tmp_path: Any) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "blob"
    path.write_bytes(data)
    opened: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
        opened.append(handle)
        return environ["wsgi.file_wrapper"](handle, 100_000)

    live = wsgi_server(app)
    response = requests.get(live.url + "/", timeout=10)
    assert response.content == data
    wait_for(lambda: opened and opened[0].closed, what="the file to be closed")


def test_wsgi_errors_go_to_the_app_logger(wsgi_server: Any, caplog: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.write("part\n")
        errors.writelines(["tail"])
        errors.flush()
        start_response("200 OK", TEXT)
        return [b"ok"]

    live = wsgi_server(app)
    with caplog.at_level(logging.ERROR, "thor_gateway.app"):
        assert requests.get(live.url + "/", timeout=5).text == "ok"
    messages = [r.getMessage() for r in caplog.records if r.name == "thor_gateway.app"]
    assert messages == ["first line", "second part", "tail"]


def test_half_close_after_the_request_stops_the_response(wsgi_server: Any) -> None:
    """The server takes an EOF while the response is pending as the client leaving:
    the streaming app is stopped and its close() is called."""
    closed = threading.Event()
    may_answer = threading.Event()

    def parts() -> Any:
        while True:
            yield b"x" * 65536

    def app(environ: dict[str, Any], start_response: Any) -> ClosingBody:
        environ["wsgi.input"].read(3)
        assert may_answer.wait(5)
        start_response("200 OK", TEXT)
        return ClosingBody(parts(), closed)

    live = wsgi_server(app)
    with connect(live.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: not live.server.connections, what="the server to drop the connection")
        may_answer.set()
        assert closed.wait(10), "close() not called after the client left"


def str_body_app(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", TEXT)
    return ["text, not bytes"]


def str_chunk_app(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", TEXT)
    yield "text, not bytes"


def none_app(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", TEXT)


def no_start_response_app(environ: dict[str, Any], start_response: Any) -> Any:
    return [b"body without a status"]


def write_first_app(environ: dict[str, Any], start_response: Any) -> Any:
    start_response.__self__.write(b"too early")  # the bound write() before start_response
    return []


@pytest.mark.parametrize(
    "app", [str_body_app, str_chunk_app, none_app, no_start_response_app, write_first_app]
)
def test_pep3333_violations_are_500(wsgi_server: Any, app: Any, caplog: Any) -> None:
    live = wsgi_server(app, validate=False)  # the validator would assert first
    with caplog.at_level(logging.ERROR, "thor_gateway.wsgi"):
        raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 500
    assert b"bytes" not in raw
    assert b"too early" not in raw
    wait_for(lambda: "error in WSGI app" in caplog.text, what="the log line")
