"""WSGI adapter over a real HttpServer on loopback: environ, request bodies, flow control.

Apps run under ``wsgiref.validate.validator`` (the ``wsgi_server`` fixture) unless a
test says why not, and warnings are errors: a PEP 3333 violation fails the test.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
from typing import Any

import pytest
import requests

from tests.gateway.adapter_helpers import (
    body_of,
    connect,
    exchange_raw,
    push_held_upload,
    read_head,
    read_until_close,
    stalled_download,
    status_of,
    wait_for,
)

TEXT = [("Content-Type", "text/plain")]


def streamed(live: Any) -> Any:
    """The handler streams request bodies to the app (``buffer_input=False``)."""
    live.wsgi.buffer_input = False
    return live


def environ_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    shown = {k: v for k, v in environ.items() if type(v) is str}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        shown[key] = environ[key]
    shown["input_terminated"] = environ.get("wsgi.input_terminated")
    shown["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(shown).encode()]


def test_environ_required_keys_and_values(wsgi_server: Any) -> None:
    live = wsgi_server(environ_app, b"/api")
    response = requests.get(
        live.url + "/api/a%20b/%C3%A9?x=1&y=%20",
        headers={"X-Multi": "1", "Cookie": "a=1"},
        timeout=5,
    )
    assert response.status_code == 200
    env = response.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/api"
    # Percent-decoded, then latin-1 (PEP 3333): é is two code points here.
    assert env["PATH_INFO"] == "/a b/\xc3\xa9"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(live.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == f"127.0.0.1:{live.port}"
    assert env["HTTP_X_MULTI"] == "1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["input_terminated"] is True
    assert env["has_file_wrapper"] is True
    assert "CONTENT_LENGTH" not in env
    assert "CONTENT_TYPE" not in env


def test_environ_at_the_mount_point_itself(wsgi_server: Any) -> None:
    live = wsgi_server(environ_app, b"/api")
    env = requests.get(live.url + "/api", timeout=5).json()
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "")
    env = requests.get(live.url + "/api/", timeout=5).json()
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "/")


def test_environ_repeated_headers_content_headers(wsgi_server: Any) -> None:
    live = wsgi_server(environ_app)
    raw = exchange_raw(
        live.port,
        b"POST /p HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\nCookie: c=1\r\n"
        b"Cookie: d=2\r\nContent-Type: text/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    assert status_of(raw) == 200
    env = json.loads(body_of(raw))
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_COOKIE"] == "c=1; d=2"
    assert env["CONTENT_TYPE"] == "text/x"
    assert env["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/p"


@pytest.mark.parametrize(
    "fields",
    [
        [b"X_Forwarded_For: 1.2.3.4"],
        [b"X_Forwarded_For: 1.2.3.4", b"X-Forwarded-For: 5.6.7.8"],
        [b"X-Forwarded-For: 5.6.7.8", b"X_Forwarded_For: 1.2.3.4"],
    ],
)
def test_underscore_headers_are_dropped(wsgi_server: Any, fields: list[bytes]) -> None:
    """Appendix B55: an underscore name never reaches HTTP_X_FORWARDED_FOR."""
    live = wsgi_server(environ_app)
    raw = exchange_raw(
        live.port,
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"\r\n".join(fields) + b"\r\nConnection: close\r\n\r\n",
    )
    env = json.loads(body_of(raw))
    if len(fields) == 1:
        assert "HTTP_X_FORWARDED_FOR" not in env
    else:
        assert env["HTTP_X_FORWARDED_FOR"] == "5.6.7.8"
    assert not any("1.2.3.4" in str(v) for v in env.values())


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(1 << 30)
    start_response("200 OK", TEXT)
    return [b"%d:" % len(body), body]


def test_content_length_body_and_fast_path_length(wsgi_server: Any) -> None:
    live = wsgi_server(echo_app, validate=False)
    response = requests.post(live.url + "/", data=b"x" * 100_000, timeout=5)
    assert response.status_code == 200
    assert response.content == b"100000:" + b"x" * 100_000
    # A list response gets a Content-Length, so the server does not chunk it.
    assert response.headers["Content-Length"] == str(len(response.content))
    assert "Transfer-Encoding" not in response.headers


def test_generator_response_is_chunked(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        yield b"a"
        yield b""
        yield b"b"

    live = wsgi_server(app)
    response = requests.get(live.url + "/", timeout=5)
    assert response.content == b"ab"
    assert response.headers["Transfer-Encoding"] == "chunked"


def test_chunked_request_body_is_streamed_to_the_app(wsgi_server: Any) -> None:
    """The app sees the first chunk before the client has sent the rest."""
    first_seen = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        assert "CONTENT_LENGTH" not in environ
        first = stream.readline()
        first_seen.set()
        rest = stream.read(1 << 20)
        start_response("200 OK", TEXT)
        return [first, b"|", rest]

    live = streamed(wsgi_server(app))
    with connect(live.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n6\r\nhello\n\r\n"
        )
        assert first_seen.wait(5), "the app did not get the first chunk while the body was open"
        sock.sendall(b"5\r\nworld\r\n0\r\n\r\n")
        raw = read_until_close(sock)
    assert status_of(raw) == 200
    assert body_of(raw) == b"hello\n|world"


def test_input_readline_readlines_iteration(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline(3)
        second = stream.readline()
        lines = stream.readlines()
        start_response("200 OK", TEXT)
        return [json.dumps([first.decode(), second.decode(), [x.decode() for x in lines]]).encode()]

    live = wsgi_server(app)
    response = requests.post(live.url + "/", data=b"abcdef\nline2\nline3\nlast", timeout=5)
    assert response.json() == ["abc", "def\n", ["line2\n", "line3\n", "last"]]


def test_iterating_the_input(wsgi_server: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        lines = list(environ["wsgi.input"])
        start_response("200 OK", TEXT)
        return [b"%d" % len(lines)]

    live = wsgi_server(app, validate=False)  # the validator's input wrapper has no __iter__ check
    assert requests.post(live.url + "/", data=b"a\nb\nc", timeout=5).text == "3"


def test_expect_100_continue_is_sent_only_when_the_app_reads(wsgi_server: Any) -> None:
    may_read = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        assert may_read.wait(5)
        body = environ["wsgi.input"].read(5)
        start_response("200 OK", TEXT)
        return [body]

    live = streamed(wsgi_server(app))
    with connect(live.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # nothing yet: the app has not read
        sock.settimeout(5)
        may_read.set()
        head, _ = read_head(sock)
        assert head == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        raw = read_until_close(sock)
    assert status_of(raw) == 200
    assert body_of(raw) == b"hello"


def test_expect_100_continue_with_http_client(wsgi_server: Any) -> None:
    live = wsgi_server(echo_app, validate=False)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
    conn.putrequest("PUT", "/up")
    conn.putheader("Content-Length", "3")
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    # http.client does not wait for 100 Continue; read it from the socket by hand.
    assert conn.sock is not None
    head, rest = read_head(conn.sock)
    assert head.startswith(b"HTTP/1.1 100 Continue")
    assert rest == b""
    conn.send(b"abc")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"3:abc")
    conn.close()


def test_expect_100_continue_with_curl(wsgi_server: Any, tmp_path: Any) -> None:
    import subprocess

    live = wsgi_server(echo_app, validate=False)
    payload = tmp_path / "big"
    payload.write_bytes(b"z" * 2_000_000)
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-v",
            "--max-time",
            "20",
            "--data-binary",
            f"@{payload}",
            "-H",
            "Content-Type: application/octet-stream",
            live.url + "/",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert b"Expect: 100-continue" in result.stderr
    assert b"HTTP/1.1 100 Continue" in result.stderr
    assert result.stdout == b"2000000:" + b"z" * 2_000_000


class Recorder:
    """Records what an app saw, for assertions from the test thread."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.closed = threading.Event()
        self.events: list[str] = []


def reading_app(recorder: Recorder) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            body = environ["wsgi.input"].read(10)
        except OSError as exc:
            recorder.errors.append(exc)
            raise
        start_response("200 OK", TEXT)
        return [body]

    return app


@pytest.mark.parametrize(
    "request_bytes",
    [
        # Appendix B23: 3 of the declared bytes, then half-close (a body larger than the
        # adapter waits for before calling the app, so the app is reading when it breaks).
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc",
        # Appendix B22: chunked body never terminated, then half-close.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n",
    ],
    ids=["B23-content-length", "B22-chunked"],
)
def test_truncated_body_makes_read_raise_and_never_200(
    wsgi_server: Any, request_bytes: bytes
) -> None:
    recorder = Recorder()
    live = streamed(wsgi_server(reading_app(recorder)))
    raw = exchange_raw(live.port, request_bytes, half_close=True)
    wait_for(lambda: recorder.errors, what="the app's read() to fail")
    assert isinstance(recorder.errors[0], OSError)
    assert status_of(raw) != 200
    assert b"200 OK" not in raw


def test_small_truncated_body_never_reaches_the_app(wsgi_server: Any) -> None:
    # A small Content-Length body is gathered before the app runs: a truncated one
    # (Appendix B23) is answered 400 by the server and the app is never called.
    calls: list[object] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ)
        start_response("200 OK", TEXT)
        return [b"ok"]

    live = wsgi_server(app)
    raw = exchange_raw(
        live.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        half_close=True,
    )
    assert status_of(raw) == 400
    assert calls == []


def test_body_timeout_surfaces_as_read_error(wsgi_server: Any) -> None:
    recorder = Recorder()
    live = streamed(wsgi_server(reading_app(recorder), body_timeout=0.3))
    with connect(live.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nabc")
        raw = read_until_close(sock)
    wait_for(lambda: recorder.errors, what="the app's read() to fail")
    assert status_of(raw) == 408


def test_keep_alive_many_requests(wsgi_server: Any) -> None:
    live = wsgi_server(environ_app)
    with requests.Session() as session:
        ports = {
            session.get(live.url + f"/{i}", timeout=5).json()["REMOTE_PORT"] for i in range(20)
        }
    assert len(ports) == 1


def test_pool_saturation_answers_503(wsgi_server: Any, caplog: Any) -> None:
    release = threading.Event()
    running = threading.Semaphore(0)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        running.release()
        assert release.wait(10)
        start_response("200 OK", TEXT)
        return [b"ok"]

    live = wsgi_server(app, threads=1, max_queue=1)
    socks = [connect(live.port) for _ in range(2)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert running.acquire(timeout=5)
        wait_for(lambda: live.wsgi.pool.admitted == 2, what="one running, one queued")
        with caplog.at_level(logging.WARNING, "thor_gateway.wsgi"):
            refused = requests.get(live.url + "/third", timeout=5)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert "saturated" in caplog.text
        release.set()
        for sock in socks:
            assert status_of(read_until_close(sock)) == 200
    finally:
        release.set()
        for sock in socks:
            sock.close()


def test_slow_client_keeps_the_generator_blocked(wsgi_server: Any) -> None:
    """64 MiB generated for a client that stops reading: production stalls, memory bounded."""
    produced = [0]
    chunk = b"y" * 65536
    total = 64 * 1024 * 1024

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(total))])
        for _ in range(total // len(chunk)):
            produced[0] += len(chunk)
            yield chunk

    live = wsgi_server(app)
    received = stalled_download(live.port, produced)
    assert received > total
    assert produced[0] == total


def test_request_body_backpressure_holds_the_client(wsgi_server: Any) -> None:
    """While the app does not read, the client cannot push the whole body."""
    release = threading.Event()
    total = 16 * 1024 * 1024

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.read(1)  # resumes the body once, then stops reading
        assert release.wait(10)
        rest = stream.read(total)
        start_response("200 OK", TEXT)
        return [b"%d" % (len(first) + len(rest))]

    live = streamed(wsgi_server(app))
    raw = push_held_upload(live.port, total, release)
    assert body_of(raw) == b"%d" % total


def test_environ_over_a_unix_socket(wsgi_server: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "gw.sock")
    wsgi_server(environ_app, b"/u", path=path)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET /u/p?q HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        raw = read_until_close(sock)
    env = json.loads(body_of(raw))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/u", "/p", "q")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "80")
    assert "REMOTE_ADDR" not in env
    assert env["HTTP_HOST"] == "local"
