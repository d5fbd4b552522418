"""TEST-ONLY ASGI apps for the gateway's WebSocket tests and its Autobahn run.

``app`` echoes every message as it came (text as text, bytes as bytes); plain HTTP gets a
short 200. ``/deny`` refuses with a denial response (418 and a body), ``/close`` with a
close before accept (403), ``/boom`` raises before accepting (500), ``/proto`` accepts the
subprotocol "chat" with an extra header, ``/bye`` accepts then closes with 4000 "bye".
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"echo\n"})
        return
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 418, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"pe"})
        return
    if path == "/close":
        await send({"type": "websocket.close"})
        return
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/proto":
        await send(
            {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-thor", b"1")]}
        )
        await send({"type": "websocket.send", "text": repr(scope["subprotocols"])})
    else:
        await send({"type": "websocket.accept"})
    if path == "/bye":
        await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
