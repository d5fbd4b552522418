"""A proxied name that resolves to more addresses spreads its load as DNS changes."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests

from tests.gateway.proxy_support import echo_server, wait_for
from thor_gateway.proxy import ProxyHandler


class FakeResolver:
    """Answers ``localhost`` from a list the test changes (a fake of thor.dns.lookup)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.lookups = 0

    def __call__(self, host: str, port: int, callback: Callable[..., Any], *, loop: Any) -> None:
        assert host == "localhost"
        self.lookups += 1
        results = [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in self.addresses
        ]
        loop.call_soon(callback, results)


def test_load_spreads_over_new_addresses(live_server: Callable[..., Any]) -> None:
    with echo_server("v4") as v4, echo_server("v6", "::1", v4.port) as v6:
        assert v6.port == v4.port
        resolver = FakeResolver(["127.0.0.1"])
        live = live_server()
        handler = ProxyHandler(
            [f"http://localhost:{v4.port}"],
            loop=live.loop,
            resolver=resolver,
            resolve_interval=0.05,
        )
        started = threading.Event()
        live.call(handler.startup, lambda exc: started.set())
        assert started.wait(5)
        live.mount(handler)

        def servers(n: int) -> Counter[str]:
            return Counter(
                requests.get(live.url + "/", timeout=10).json()["server"] for _ in range(n)
            )

        first = servers(4)
        assert first == {"v4": 4}
        doc = requests.get(live.url + "/", timeout=10).json()
        assert [v for k, v in doc["headers"] if k.lower() == "host"] == [f"localhost:{v4.port}"]

        resolver.addresses = ["127.0.0.1", "::1"]
        assert wait_for(lambda: len(handler.upstreams.members) == 2)
        assert servers(6) == {"v4": 3, "v6": 3}

        resolver.addresses = ["::1"]
        assert wait_for(lambda: len(handler.upstreams.members) == 1)
        assert servers(3) == {"v6": 3}
        assert resolver.lookups >= 3
        done = threading.Event()
        live.call(handler.shutdown, lambda exc: done.set())
        assert done.wait(5)
