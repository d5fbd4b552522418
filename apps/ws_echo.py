"""A WebSocket echo server on Thor's own API: every message comes back as it came.

Standalone::

    python apps/ws_echo.py 127.0.0.1 8000        # ws://127.0.0.1:8000/
    python apps/ws_echo.py 127.0.0.1 8000 0      # no keepalive pings (the Autobahn runs)

or as a native app under thor-gateway::

    thor-gateway apps.ws_echo:handler

A request that is not a WebSocket handshake gets a short text answer.
"""

from __future__ import annotations

import sys
from typing import Any

import thor
import thor.websocket
from thor.http.server import HttpServer
from thor_gateway import native_app

# accept()'s keyword arguments (main() may turn the keepalive pings off).
OPTIONS: dict[str, Any] = {}


@native_app
def handler(exchange: Any) -> None:
    """Accept WebSocket handshakes and echo; answer plain HTTP requests with 200."""
    if not thor.websocket.is_websocket_request(exchange.req_hdrs):
        body = b"a WebSocket echo: connect with Upgrade: websocket\n"
        exchange.once(
            "request_done",
            lambda trailers: exchange.respond(200, b"OK", [(b"Content-Type", b"text/plain")], body),
        )
        return
    websocket = thor.websocket.accept(exchange, **OPTIONS)
    if websocket is None:
        return  # refused (400 / 426), already answered
    # Echo: a message comes back the way it came.
    websocket.on(
        "message",
        lambda data: websocket.send_text(data) if type(data) is str else websocket.send_bytes(data),
    )
    # Backpressure: while the peer does not read our echoes, stop reading its messages.
    websocket.on("pause", websocket.pause)


def main(host: str, port: int, ping_interval: float | None = None) -> None:
    """Serve ``handler`` on host:port until interrupted; pings every ``ping_interval`` s."""
    if ping_interval is not None:
        OPTIONS["ping_interval"] = ping_interval or None
    server = HttpServer(host, port)
    server.on("exchange", handler)
    thor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else None)
