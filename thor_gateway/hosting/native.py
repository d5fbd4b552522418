"""Native Thor apps: ``app(exchange)`` attaches listeners to a server exchange.

A native app is written against ``thor.HttpServer``: it is called with each
exchange (as an ``'exchange'`` listener would be) and listens for
``request_start`` itself.  The router routes from the server's ``exchange``
event, before the exchange emits ``request_start``, so the app sees the
request exactly as if it were the only listener on the server.  Everything
else (body events, responding, backpressure) is between the app and the
exchange; the app runs on the loop thread and must not block.

WebSockets.  A native app accepts them itself (``thor.websocket.accept``).  For a
handshake request, the handler listens for the exchange's ``websocket`` event (which
``accept`` emits) and keeps the open socket in ``websockets`` until its ``close``: so the
gateway can count them (``/metrics``), log a line at each close (``websocket_closed``,
set by the server when there is an access log) and, when it stops, close those still open
with 1001 "going away" at the end of the graceful timeout (``close_websockets``,
RFC 6455 §7.4.1), as it does an ASGI app's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thor.http.exchange import Exchange
from thor_gateway.routing.request import Done, Request, asks_websocket

__all__ = ["NativeHandler"]


class NativeHandler:
    """Serve a native Thor app; implements :class:`thor_gateway.routing.request.Handler`."""

    # Called with (exchange, request, websocket) when a WebSocket closes (the access log).
    websocket_closed: Callable[..., None] | None = None

    def __init__(self, app: Callable[[Any], object]) -> None:
        self.app = app
        self.websockets: set[Any] = set()  # open thor.websocket.WebSocket (loop thread)

    def handle(self, exchange: Exchange, request: Request) -> None:
        """Let the app attach its listeners; ``request_start`` comes next."""
        if request.method == b"GET" and asks_websocket(request.headers):
            exchange.on("websocket", lambda websocket: self._opened(exchange, request, websocket))
        self.app(exchange)

    def _opened(self, exchange: Exchange, request: Request, websocket: Any) -> None:
        self.websockets.add(websocket)

        def closed(code: int, reason: str) -> None:
            self.websockets.discard(websocket)
            if self.websocket_closed is not None:
                self.websocket_closed(exchange, request, websocket)

        websocket.on("close", closed)

    def close_websockets(self, code: int) -> None:
        """Close every open WebSocket with ``code`` (1001 at shutdown, RFC 6455 §7.4.1)."""
        for websocket in list(self.websockets):
            websocket.close(code, "server shutting down")

    def startup(self, done: Done) -> None:
        """Native apps have no startup protocol."""
        done(None)

    def shutdown(self, done: Done) -> None:
        """Native apps have no shutdown protocol."""
        done(None)
