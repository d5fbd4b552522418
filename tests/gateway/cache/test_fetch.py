"""The Fetch a cache miss hands to the inner handler: freed when it is over."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from tests.gateway.cache.test_handler import CacheHandler, Clock, Origin, get
from thor_gateway.cache.fetch import Fetch
from thor_gateway.routing.request import Request


class RelayingOrigin(Origin):
    """An inner handler that listens to its exchange as the proxy's relay does (a listener
    that refers back to the exchange through the relay)."""

    def handle(self, exchange: Any, request: Request) -> None:
        relay = Relay(exchange)
        exchange.on("done", relay.done)
        exchange.on("pause", relay.pause)
        super().handle(exchange, request)


class Relay:
    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange

    def done(self, completed: bool) -> None:
        pass

    def pause(self, paused: bool) -> None:
        pass


def test_a_finished_fetch_is_freed_without_the_collector() -> None:
    fetches: list[weakref.ref[Fetch]] = []
    origin = RelayingOrigin(lambda r: (200, [(b"Cache-Control", b"max-age=0")], b"abc"))
    cache = CacheHandler(origin, clock=Clock())
    real = origin.handle

    def watch(exchange: Any, request: Request) -> None:
        fetches.append(weakref.ref(exchange))
        real(exchange, request)

    origin.handle = watch  # type: ignore[method-assign]
    gc.disable()
    try:
        for _ in range(2):  # a miss, then a validation of the stored response
            exchange = get(cache)
            assert exchange.body == b"abc"
            exchange.forget_listeners()  # (as the server's exchange does when it is done)
            del exchange
        assert len(fetches) == 2
        assert [ref() for ref in fetches] == [None, None]
    finally:
        gc.enable()
