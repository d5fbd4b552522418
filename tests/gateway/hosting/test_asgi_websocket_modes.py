"""The websocket scope in-process, in both ASGI modes (a thread of its own, and inline on an
AsyncioLoop), with the ``websockets`` sync client: echo, a protocol error after a message
(answered first), a slow app (reading pauses) and the client leaving."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from typing import Any

import pytest

from tests.websocket.asgi_echo import app as echo_app
from tests.websocket.helpers import client_frame

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402

HANDSHAKE = (
    b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def ws_url(live: Any, path: str) -> str:
    return live.url.replace("http://", "ws://") + path


def test_echo(asgi_server: Any) -> None:
    live = asgi_server(echo_app, lifespan="off")
    with connect(ws_url(live, "/echo"), open_timeout=5) as ws:
        for i in range(20):
            ws.send(f"message {i}")
        assert [ws.recv(5) for _ in range(20)] == [f"message {i}" for i in range(20)]
        ws.send(b"\x01" * 200_000)
        assert ws.recv(5) == b"\x01" * 200_000


def test_a_message_before_a_protocol_error_is_answered_first(asgi_server: Any) -> None:
    live = asgi_server(echo_app, lifespan="off")
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
        sock.sendall(HANDSHAKE)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        rest = data.partition(b"\r\n\r\n")[2]
        sock.sendall(client_frame(1, b"first") + client_frame(3, b""))  # opcode 3: reserved
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    # The echo of "first" (text, 5 bytes), then the close frame with 1002.
    assert rest[:7] == b"\x81\x05first"
    assert rest[7] == 0x88
    assert struct.unpack("!H", rest[9:11])[0] == 1002


def test_a_slow_app_pauses_reading_and_loses_nothing(asgi_server: Any) -> None:
    got: list[int] = []
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        first = await receive()
        got.append(len(first["bytes"]))
        await asyncio.wait_for(release.wait(), 10)  # the app is busy: messages pile up
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            got.append(len(message["bytes"]))
            if len(got) == 40:
                await send({"type": "websocket.send", "text": "all here"})

    live = asgi_server(slow_app, lifespan="off")
    handler = live.asgi
    with connect(ws_url(live, "/"), open_timeout=5, compression=None) as ws:
        # 4 MB while the app is busy: more than the 1 MiB it may have waiting, so the socket
        # stops reading (sent from a thread: the client's send blocks once TCP is full).
        sender = threading.Thread(target=lambda: [ws.send(b"x" * 100_000) for _ in range(40)])
        sender.start()
        end = time.monotonic() + 10
        while not any(w.t_paused for w in list(handler.websockets)) and time.monotonic() < end:
            time.sleep(0.01)
        paused = any(w.t_paused for w in list(handler.websockets))
        handler._aloop.call_soon_threadsafe(release.set)
        assert ws.recv(10) == "all here"
        sender.join(10)
    assert paused
    assert got == [100_000] * 40


def test_the_client_leaving_is_a_disconnect_with_1006(asgi_server: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as error:
            seen.append(type(error).__name__)

    live = asgi_server(app, lifespan="off")
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
        sock.sendall(HANDSHAKE)
        assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    end = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    assert seen == [
        {"type": "websocket.disconnect", "code": 1006, "reason": ""},
        "ClientDisconnected",
    ]
