"""Re-resolution honours a short interval, and /metrics keeps every member's history.

Issue 17: ``resolve_interval`` below 10 s had no effect (``thor.dns`` answered from its
10 s cache); a member replaced by re-resolution took its counter series out of
/metrics (a counter must never go backwards); an attempt the client made again on a
stale pooled connection was not counted.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

import thor.dns
from tests.gateway.operations.test_metrics import parse
from tests.gateway.proxy.test_proxy_dns import FakeResolver
from tests.gateway.proxy_support import echo_server, raw_upstream, read_head, wait_for
from thor_gateway.operations.metrics import Metrics, upstream_labels
from thor_gateway.proxy import ProxyHandler

NAME = "flip.test"


class FakeSystemResolver:
    """``socket.getaddrinfo`` for one made-up name, answered from a list the test changes."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.queries = 0
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        self.queries += 1
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, int(port), 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port)))
            for a in self.addresses
        ]


@pytest.fixture
def system_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemResolver]:
    fake = FakeSystemResolver(["127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    thor.dns.clear_cache()
    yield fake
    thor.dns.clear_cache()


def start(live: Any, handler: ProxyHandler) -> None:
    started = threading.Event()
    live.call(handler.startup, lambda exc: started.set())
    assert started.wait(5)
    live.mount(handler)


def servers(url: str, n: int) -> Counter[str]:
    return Counter(requests.get(url + "/", timeout=10).json()["server"] for _ in range(n))


def test_a_short_resolve_interval_is_honoured(
    live_server: Callable[..., Any], system_resolver: FakeSystemResolver
) -> None:
    with echo_server("v4") as v4, echo_server("v6", "::1", v4.port):
        live = live_server()
        handler = ProxyHandler([f"http://{NAME}:{v4.port}"], loop=live.loop, resolve_interval=0.2)
        start(live, handler)
        assert servers(live.url, 3) == {"v4": 3}
        system_resolver.addresses = ["::1"]
        # Within a few intervals, not after the resolver cache's 10 s.
        assert wait_for(lambda: [m.address for m in handler.upstreams.members] == ["::1"], 3.0)
        assert servers(live.url, 3) == {"v6": 3}


def test_a_replaced_member_keeps_its_series(live_server: Callable[..., Any]) -> None:
    with echo_server("v4") as v4, echo_server("v6", "::1", v4.port):
        resolver = FakeResolver(["127.0.0.1"])
        live = live_server()
        handler = ProxyHandler(
            [f"http://localhost:{v4.port}"],
            loop=live.loop,
            resolver=resolver,
            resolve_interval=0.05,
        )
        start(live, handler)
        metrics = Metrics()
        metrics.upstreams = lambda: handler.upstream_samples("/")

        def requests_total() -> dict[str, float]:
            samples = parse(live.call(metrics.render).decode())
            return {
                labels: value
                for (name, labels), value in samples.items()
                if name == "thor_upstream_requests_total"
            }

        old = upstream_labels("/", f"http://127.0.0.1:{v4.port}")
        new = upstream_labels("/", f"http://[::1]:{v4.port}")
        assert servers(live.url, 4) == {"v4": 4}
        assert requests_total()[old] == 4
        resolver.addresses = ["::1"]
        assert wait_for(lambda: [m.address for m in handler.upstreams.members] == ["::1"])
        assert servers(live.url, 2) == {"v6": 2}
        assert requests_total() == {old: 4, new: 2}
        resolver.addresses = ["127.0.0.1"]  # back again: the series goes on from 4
        assert wait_for(lambda: [m.address for m in handler.upstreams.members] == ["127.0.0.1"])
        assert servers(live.url, 1) == {"v4": 1}
        assert requests_total() == {old: 5, new: 2}
        samples = parse(live.call(metrics.render).decode())
        assert samples[("thor_upstream_in_service", new)] == 0


def test_every_attempt_is_counted(live_server: Callable[..., Any]) -> None:
    """The second request finds its pooled connection dead and is sent again: 3 attempts."""

    dropped: list[bytes] = []

    def first_then_drop(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        dropped.append(read_head(sock))  # the next request on this connection: unanswered
        sock.shutdown(socket.SHUT_RDWR)

    with raw_upstream(first_then_drop) as upstream:
        live = live_server()
        handler = ProxyHandler([upstream.url], loop=live.loop)
        start(live, handler)
        for _ in range(2):
            assert requests.get(live.url + "/", timeout=10).text == "ok"
        assert wait_for(lambda: len(upstream.heads) + len([d for d in dropped if d]) == 3)
        (values,) = live.call(handler.upstream_samples, "/").values()
        assert values["requests"] == 3
        stopped = threading.Event()  # closes the idle upstream connection
        live.call(handler.shutdown, lambda exc: stopped.set())
        assert stopped.wait(5)
