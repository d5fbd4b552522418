"""A WebSocket chat on Thor's own API: each text message goes to every connected client.

Standalone::

    python apps/ws_chat.py 127.0.0.1 8000        # ws://127.0.0.1:8000/

or as a native app under thor-gateway (one room per worker process)::

    thor-gateway apps.ws_chat:handler
"""

from __future__ import annotations

import sys
from typing import Any

import thor
import thor.websocket
from thor.http.server import HttpServer
from thor.websocket import WebSocket
from thor_gateway import native_app

ROOM: set[WebSocket] = set()


def join(websocket: WebSocket) -> None:
    """Add ``websocket`` to the room; its text messages are broadcast, it leaves at close."""
    ROOM.add(websocket)

    def message(data: str | bytes) -> None:
        if type(data) is not str:
            websocket.close(1003, "text only")  # §7.4.1: 1003, a type it cannot accept
            return
        for member in list(ROOM):
            member.send_text(data)  # a member's own buffer absorbs a slow reader

    websocket.on("message", message)
    websocket.on("close", lambda code, reason: ROOM.discard(websocket))


@native_app
def handler(exchange: Any) -> None:
    """Accept WebSocket handshakes into the room; plain HTTP requests get 426."""
    if not thor.websocket.is_websocket_request(exchange.req_hdrs):
        exchange.once(
            "request_done",
            lambda trailers: exchange.respond(
                426, b"Upgrade Required", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
            ),
        )
        return
    websocket = thor.websocket.accept(exchange, subprotocols=["chat"])
    if websocket is not None:
        join(websocket)


def main(host: str, port: int) -> None:
    """Serve ``handler`` on host:port until interrupted."""
    server = HttpServer(host, port)
    server.on("exchange", handler)
    thor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
