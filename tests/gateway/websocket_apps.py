"""TEST-ONLY apps for tests/gateway/hosting/test_asgi_websocket.py.

``starlette_app`` is a WebSocket endpoint written Starlette's way (echo, with the subprotocol
chosen from the offer; FastAPI's is in websocket_fastapi.py); ``wsgi_app`` is a plain WSGI
app, whose routes must refuse WebSocket handshakes.
"""

from __future__ import annotations

from typing import Any


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi\n"]


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(websocket: WebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol="chat" if "chat" in offered else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                if message.get("text") is not None:
                    await websocket.send_text("starlette: " + message["text"])
                else:
                    await websocket.send_bytes(message["bytes"])
        except WebSocketDisconnect as gone:
            print(f"starlette disconnect {gone.code}", flush=True)

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing this module needs neither framework.
    if name == "starlette_app":
        return _starlette()
    raise AttributeError(name)
