"""A canary release in front of two upstream pools, decided per request in Python.

    STABLE_URLS=http://127.0.0.1:8001,http://127.0.0.1:8002 CANARY_URLS=http://127.0.0.1:8003 \\
        thor-gateway --bind 127.0.0.1:8000 apps.canary_proxy:app

A request goes to the canary pool when it asks to (a ``canary=1`` cookie, or an
``X-Canary: 1`` header), and otherwise to the stable pool, balanced by least connections.
Each pool is a :class:`~thor_gateway.proxy.ProxyHandler` with its own balancing, health
and retries; ``Canary`` is itself a handler, so the gateway mounts it like any app and
runs both pools' startup and shutdown. Every answer says which pool served it in an
``X-Pool`` header, added by a response transform.

Built when the module is imported, as here, the pools work under ``--workers`` too: each
worker renews the loop they are bound to (``Loop.after_fork``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from thor.http import Exchange
from thor_gateway.aggregation.transform import HeaderRewrite
from thor_gateway.proxy import ProxyHandler
from thor_gateway.routing.request import Request

Done = Callable[[BaseException | None], None]


def _urls(name: str, default: str) -> list[str]:
    return [url.strip() for url in os.environ.get(name, default).split(",") if url.strip()]


def wants_canary(request: Request) -> bool:
    """A ``canary=1`` cookie or an ``X-Canary: 1`` header."""
    for name, value in request.headers:
        lname = name.lower()
        if lname == b"x-canary" and value.strip() == b"1":
            return True
        if lname == b"cookie" and any(part.strip() == b"canary=1" for part in value.split(b";")):
            return True
    return False


class Canary:
    """Routes each request to one of two proxies (the gateway's Handler interface)."""

    def __init__(self, stable: ProxyHandler, canary: ProxyHandler) -> None:
        self.stable = stable
        self.canary = canary

    def handle(self, exchange: Exchange, request: Request) -> None:
        pool = self.canary if wants_canary(request) else self.stable
        pool.handle(exchange, request)

    def startup(self, done: Done) -> None:
        def stable_started(error: BaseException | None) -> None:
            if error is not None:
                done(error)
            else:
                self.canary.startup(done)

        self.stable.startup(stable_started)

    def shutdown(self, done: Done) -> None:
        self.stable.shutdown(lambda _: self.canary.shutdown(done))


def _labelled(pool: str) -> list[HeaderRewrite]:
    return [HeaderRewrite(set={b"X-Pool": pool.encode()})]


app = Canary(
    stable=ProxyHandler(
        _urls("STABLE_URLS", "http://127.0.0.1:8001"),
        balancer="least_connections",
        transforms=_labelled("stable"),
    ),
    canary=ProxyHandler(
        _urls("CANARY_URLS", "http://127.0.0.1:8003"),
        transforms=_labelled("canary"),
    ),
)
