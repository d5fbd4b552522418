"""Native Thor apps: ``app(exchange)`` attaches listeners to a server exchange.

A native app is written against ``thor.HttpServer``: it is called with each
exchange (as an ``'exchange'`` listener would be) and listens for
``request_start`` itself.  The router routes from the server's ``exchange``
event, before the exchange emits ``request_start``, so the app sees the
request exactly as if it were the only listener on the server.  Everything
else (body events, responding, backpressure) is between the app and the
exchange; the app runs on the loop thread and must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thor.http.exchange import Exchange
from thor_gateway.routing.request import Done, Request

__all__ = ["NativeHandler"]


class NativeHandler:
    """Serve a native Thor app; implements :class:`thor_gateway.routing.request.Handler`."""

    def __init__(self, app: Callable[[Any], object]) -> None:
        self.app = app

    def handle(self, exchange: Exchange, request: Request) -> None:
        """Let the app attach its listeners; ``request_start`` comes next."""
        self.app(exchange)

    def startup(self, done: Done) -> None:
        """Native apps have no startup protocol."""
        done(None)

    def shutdown(self, done: Done) -> None:
        """Native apps have no shutdown protocol."""
        done(None)
