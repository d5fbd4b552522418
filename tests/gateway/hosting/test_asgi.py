"""ASGI adapter over a real HttpServer on loopback: scope, streaming, disconnects, lifespan."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
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
from thor_gateway.hosting.lifespan import LifespanError

TEXT = [(b"content-type", b"text/plain")]


async def respond(send: Any, status: int, body: bytes, headers: Any = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or TEXT})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        parts.append(message["body"])
        if not message.get("more_body"):
            return b"".join(parts)


async def scope_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "connected"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    shown = dict(scope)
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    shown["state"] = dict(scope["state"])
    scope["state"]["mutated"] = True  # must not leak into the next request
    body = await read_body(receive)
    shown["body"] = body.decode()
    await respond(send, 200, json.dumps(shown).encode(), [(b"content-type", b"application/json")])


def test_http_scope_fields(asgi_server: Any) -> None:
    live = asgi_server(scope_app, b"/api")
    assert live.startup_error is None
    response = requests.get(
        live.url + "/api/a%20b/%C3%A9?x=1&y=%20", headers={"X-Mixed-Case": "V"}, timeout=5
    )
    assert response.status_code == 200
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/api/a b/é"
    assert scope["raw_path"] == "/api/a%20b/%C3%A9"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == "/api"
    assert ["x-mixed-case", "V"] in scope["headers"]
    assert ["host", f"127.0.0.1:{live.port}"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", live.port]
    assert scope["state"] == {"db": "connected"}
    again = requests.get(live.url + "/api/", timeout=5).json()
    assert again["state"] == {"db": "connected"}, "a request's state changes leaked"
    assert again["path"] == "/api/"


def test_request_body_and_fast_response(asgi_server: Any) -> None:
    live = asgi_server(scope_app, lifespan="off")
    response = requests.post(live.url + "/echo", data=b"payload", timeout=5)
    assert response.json()["body"] == "payload"
    assert response.json()["state"] == {}


def test_chunked_body_is_streamed_with_more_body(asgi_server: Any) -> None:
    first_seen = threading.Event()
    messages: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            messages.append(message)
            first_seen.set()
            if not message.get("more_body"):
                break
        body = b"|".join(m["body"] for m in messages)
        await respond(send, 200, body)

    live = asgi_server(app, lifespan="off")
    with connect(live.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n5\r\nhello\r\n"
        )
        assert first_seen.wait(5), "the app did not get the first chunk while the body was open"
        assert messages[0] == {"type": "http.request", "body": b"hello", "more_body": True}
        sock.sendall(b"5\r\nworld\r\n0\r\n\r\n")
        raw = read_until_close(sock)
    assert status_of(raw) == 200
    assert body_of(raw).replace(b"|", b"") == b"helloworld"
    assert messages[-1]["more_body"] is False


def test_expect_100_continue_only_when_the_app_receives(asgi_server: Any) -> None:
    may_read = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, may_read.wait, 5)
        await respond(send, 200, await read_body(receive))

    live = asgi_server(app, lifespan="off")
    with connect(live.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        sock.settimeout(5)
        may_read.set()
        head, _ = read_head(sock)
        assert head == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        raw = read_until_close(sock)
    assert body_of(raw) == b"hello"


def test_big_upload_with_curl(asgi_server: Any, tmp_path: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        await respond(send, 200, b"%d" % len(body))

    live = asgi_server(app, lifespan="off")
    payload = tmp_path / "big"
    payload.write_bytes(b"q" * 3_000_000)
    result = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", "--data-binary", f"@{payload}", live.url + "/"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert b"HTTP/1.1 100 Continue" in result.stderr
    assert result.stdout == b"3000000"


def test_request_body_backpressure_pauses_the_client(asgi_server: Any) -> None:
    """While the app does not call receive(), the client cannot push the whole body."""
    release = threading.Event()
    total = 16 * 1024 * 1024

    async def app(scope: Any, receive: Any, send: Any) -> None:
        first = await receive()  # resumes the body once, then stops reading
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        body = first["body"] + (await read_body(receive) if first["more_body"] else b"")
        await respond(send, 200, b"%d" % len(body))

    live = asgi_server(app, lifespan="off")
    raw = push_held_upload(live.port, total, release)
    assert body_of(raw) == b"%d" % total


def test_streaming_response_with_more_body(asgi_server: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    live = asgi_server(app, lifespan="off")
    response = requests.get(live.url + "/", timeout=5)
    assert response.text == "abc"
    assert response.headers["Transfer-Encoding"] == "chunked"


def test_receive_after_the_response_returns_disconnect(asgi_server: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await receive())
        await respond(send, 200, b"ok")
        seen.append(await asyncio.wait_for(receive(), 5))

    live = asgi_server(app, lifespan="off")
    assert requests.get(live.url + "/", timeout=5).text == "ok"
    wait_for(lambda: len(seen) == 2, what="the second receive()")
    assert seen[0] == {"type": "http.request", "body": b"", "more_body": False}
    assert seen[1] == {"type": "http.disconnect"}


def test_client_disconnect_reaches_the_app(asgi_server: Any) -> None:
    outcome: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        try:
            for _ in range(100_000):
                await send({"type": "http.response.body", "body": b"z" * 65536, "more_body": True})
        except OSError as exc:
            outcome.append(exc)
            outcome.append(await asyncio.wait_for(receive(), 5))
            raise

    live = asgi_server(app, lifespan="off")
    with connect(live.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        read_head(sock)
    wait_for(lambda: len(outcome) == 2, timeout=10, what="send() to raise after the disconnect")
    assert isinstance(outcome[0], OSError)
    assert outcome[1] == {"type": "http.disconnect"}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n",
    ],
    ids=["B23-content-length", "B22-chunked"],
)
def test_truncated_body_gives_disconnect_never_200(asgi_server: Any, request_bytes: bytes) -> None:
    messages: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await respond(send, 200, b"complete?")

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(live.port, request_bytes, half_close=True)
    wait_for(lambda: messages and messages[-1]["type"] == "http.disconnect", what="disconnect")
    assert all(m.get("more_body", False) for m in messages[:-1])
    assert status_of(raw) != 200


def test_slow_client_blocks_send(asgi_server: Any) -> None:
    produced = [0]
    total = 64 * 1024 * 1024
    chunk = b"s" * 65536

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [*TEXT, (b"content-length", str(total).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(total // len(chunk)):
            produced[0] += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    live = asgi_server(app, lifespan="off")
    received = stalled_download(live.port, produced)
    assert received > total
    assert produced[0] == total


def test_app_exception_before_start_is_500(asgi_server: Any, caplog: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ZeroDivisionError("asgi bug")

    live = asgi_server(app, lifespan="off")
    with caplog.at_level(logging.ERROR, "thor_gateway.asgi"):
        response = requests.get(live.url + "/", timeout=5)
    assert response.status_code == 500
    wait_for(lambda: "ZeroDivisionError" in caplog.text, what="the traceback")


def test_app_exception_after_start_aborts(asgi_server: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("mid-stream")

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert raw == b"" or status_of(raw) == 200
    assert not raw.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("started", [False, True])
def test_app_returning_without_a_complete_response(asgi_server: Any, started: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": TEXT})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    if started:
        assert not raw.endswith(b"0\r\n\r\n")
    else:
        assert status_of(raw) == 500


@pytest.mark.parametrize(
    "headers",
    [
        [(b"foo", b"x\r\nbar: y")],
        [(b"foo", b"nul\x00")],
        [(b"bad name", b"v")],
        [("str-name", b"v")],
        [(b"only-name",)],
    ],
)
def test_invalid_headers_are_500_nothing_injected(asgi_server: Any, headers: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, 200, b"body", headers)

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 500
    assert b"bar" not in raw
    assert b"body" not in raw


def test_lifespan_state_and_shutdown(asgi_server: Any) -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["pool"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await respond(send, 200, scope["state"]["pool"].encode())

    live = asgi_server(app, lifespan="on")
    assert live.startup_error is None
    assert requests.get(live.url + "/", timeout=5).text == "ready"
    finished = threading.Event()
    result: list[Any] = []
    live.call(live.asgi.shutdown, lambda exc: (result.append(exc), finished.set()))
    assert finished.wait(5)
    assert result == [None]
    assert events == ["lifespan.startup", "lifespan.shutdown"]


async def no_lifespan_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "this app does not do lifespan"
    await respond(send, 200, b"plain")


def test_lifespan_auto_tolerates_apps_without_it(asgi_server: Any) -> None:
    live = asgi_server(no_lifespan_app, lifespan="auto")
    assert live.startup_error is None
    assert requests.get(live.url + "/", timeout=5).text == "plain"


def test_lifespan_on_fails_startup_for_apps_without_it(asgi_server: Any) -> None:
    live = asgi_server(no_lifespan_app, lifespan="on")
    assert isinstance(live.startup_error, LifespanError)


def test_lifespan_startup_failed_message(asgi_server: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    live = asgi_server(app, lifespan="auto")
    assert isinstance(live.startup_error, LifespanError)
    assert "no database" in str(live.startup_error)


def test_a_bad_websocket_handshake_is_400_and_never_reaches_the_app(asgi_server: Any) -> None:
    """A GET with Upgrade: websocket goes to the websocket scope (asgi_websocket.py); without
    a Sec-WebSocket-Key it is refused before the app runs (RFC 6455 §4.2.1)."""
    live = asgi_server(scope_app, lifespan="off")
    response = requests.get(
        live.url + "/ws",
        headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.text == "400 Invalid WebSocket handshake\n"


def test_keep_alive_many_requests(asgi_server: Any) -> None:
    live = asgi_server(scope_app, lifespan="off")
    with requests.Session() as session:
        clients = {
            tuple(session.get(live.url + f"/{i}", timeout=5).json()["client"]) for i in range(30)
        }
    assert len(clients) == 1


def test_half_close_after_the_request_is_a_disconnect(asgi_server: Any) -> None:
    """The server takes an EOF while the response is pending as the client leaving
    (as asyncio servers do): the app sees http.disconnect and send() raises."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await read_body(receive))
        seen.append(await asyncio.wait_for(receive(), 5))
        try:
            await respond(send, 200, b"too late")
        except OSError as exc:
            seen.append(exc)

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(
        live.port,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        half_close=True,
    )
    wait_for(lambda: len(seen) == 3, what="the app to see the disconnect")
    assert seen[0] == b"abc"
    assert seen[1] == {"type": "http.disconnect"}
    assert isinstance(seen[2], OSError)
    assert raw == b""


def test_scope_over_a_unix_socket(asgi_server: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "gw.sock")
    asgi_server(scope_app, b"/u", lifespan="off", path=path)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"GET /u/p HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        raw = read_until_close(sock)
    scope = json.loads(body_of(raw))
    assert (scope["root_path"], scope["path"]) == ("/u", "/u/p")
    assert scope["client"] is None
    assert scope["server"] is None


def test_response_trailers_extension(asgi_server: Any) -> None:
    seen_scope: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen_scope.append(scope["extensions"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True}
        )
        await send({"type": "http.response.body", "body": b"data", "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(
        live.port, b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n"
    )
    assert "http.response.trailers" in seen_scope[0]
    assert body_of(raw) == b"data!"
    assert raw.endswith(b"0\r\nx-checksum: abc\r\n\r\n")


def test_invalid_trailers_abort(asgi_server: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True}
        )
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x", b"a\r\nb: c")]})

    live = asgi_server(app, lifespan="off")
    raw = exchange_raw(live.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"b: c" not in raw
    assert not raw.endswith(b"0\r\n\r\n")


def test_encode_start_remembers_only_valid_header_lists() -> None:
    from thor_gateway.hosting.asgi import AppResponseError, encode_start

    good = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}
    first = encode_start(good)
    first[2].append((b"content-length", b"0"))  # the caller's list, not the cache's
    assert encode_start(good) == (200, b"OK", [(b"x-a", b"1")])
    bad = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1\r\nx: y")]}
    for _ in range(2):
        with pytest.raises(AppResponseError):
            encode_start(bad)
    as_lists = {"type": "http.response.start", "status": 204, "headers": [[b"x-b", b"2"]]}
    assert encode_start(as_lists) == (204, b"No Content", [(b"x-b", b"2")])
