"""thor.dns: the system resolver in a thread pool, answers on the loop thread.

The resolver is faked only where a test must count or hold queries: the fake
wraps the real ``getaddrinfo`` (so ``/etc/hosts`` still answers).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import thor.dns
import thor.loop
from thor.loop import Loop
from thor.testing import run_for


@dataclass
class CountingResolver:
    """Counts queries; with ``gate`` set, each query waits for it first."""

    calls: list[str] = field(default_factory=list)
    gate: threading.Event | None = None

    def __call__(self, name: str, port: int, family: int, socktype: int) -> list[Any]:
        self.calls.append(name)
        if self.gate is not None and not self.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        return list(socket.getaddrinfo(name, port, family, socktype))


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingResolver]:
    fake = CountingResolver()
    monkeypatch.setattr(thor.dns, "_getaddrinfo", fake)
    thor.dns.clear_cache()
    yield fake
    if fake.gate is not None:
        fake.gate.set()
    thor.dns.clear_cache()


@dataclass
class Answers:
    results: list[Any] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)

    def callback(self, loop: Loop, expected: int = 1) -> Any:
        def got(result: Any) -> None:
            self.results.append(result)
            self.threads.append(threading.get_ident())
            if len(self.results) == expected:
                loop.stop()

        return got


def test_localhost_from_etc_hosts(loop: Loop, resolver: CountingResolver) -> None:
    answers = Answers()
    thor.dns.lookup("localhost", 80, answers.callback(loop), loop=loop)
    assert answers.results == []  # never synchronously
    run_for(loop, 5)
    (results,) = answers.results
    assert isinstance(results, list)
    assert ("127.0.0.1", 80) in [r[4][:2] for r in results]
    assert all(r[1] == socket.SOCK_STREAM for r in results)
    assert answers.threads == [threading.get_ident()]  # the loop's thread
    assert resolver.calls == ["localhost"]


@pytest.mark.parametrize(
    ("host", "family", "address"),
    [
        ("127.0.0.1", socket.AF_INET, ("127.0.0.1", 8080)),
        (b"127.0.0.1", socket.AF_INET, ("127.0.0.1", 8080)),
        ("::1", socket.AF_INET6, ("::1", 8080, 0, 0)),
        ("[::1]", socket.AF_INET6, ("::1", 8080, 0, 0)),
        ("0:0::1", socket.AF_INET6, ("::1", 8080, 0, 0)),  # normalised
    ],
)
def test_ip_literals_need_no_query(
    loop: Loop, resolver: CountingResolver, host: str, family: int, address: Any
) -> None:
    answers = Answers()
    thor.dns.lookup(host, 8080, answers.callback(loop), loop=loop, socktype=socket.SOCK_DGRAM)
    assert answers.results == []
    run_for(loop, 5)
    assert answers.results == [[(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", address)]]
    assert resolver.calls == []


def test_literal_with_any_socktype(loop: Loop, resolver: CountingResolver) -> None:
    answers = Answers()
    thor.dns.lookup("127.0.0.1", 53, answers.callback(loop), loop=loop, socktype=0)
    run_for(loop, 5)
    kinds = {r[1] for r in answers.results[0]}
    assert kinds == {socket.SOCK_STREAM, socket.SOCK_DGRAM}


def test_cache_hit(loop: Loop, resolver: CountingResolver) -> None:
    first, second = Answers(), Answers()
    thor.dns.lookup("localhost", 443, first.callback(loop), loop=loop)
    run_for(loop, 5)
    thor.dns.lookup("LocalHost", 443, second.callback(loop), loop=loop)  # names are case-blind
    assert second.results == []  # a cached answer is still delivered on the loop
    run_for(loop, 5)
    assert second.results == first.results
    assert resolver.calls == ["localhost"]


def test_cache_expires(
    loop: Loop, resolver: CountingResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thor.dns, "cache_ttl", 0.05)
    for _ in range(2):
        answers = Answers()
        thor.dns.lookup("localhost", 443, answers.callback(loop), loop=loop)
        run_for(loop, 5)
        expiry = loop.time() + 0.06
        loop.schedule(0.06, loop.stop)
        run_for(loop, 5)
        assert loop.time() >= expiry
    assert resolver.calls == ["localhost", "localhost"]


def test_max_age_bounds_the_cached_answer(loop: Loop, resolver: CountingResolver) -> None:
    """A caller that must see changes sooner than cache_ttl (a proxy's resolve_interval)."""
    for max_age in (None, 5.0, 0.0, 0.0):
        answers = Answers()
        thor.dns.lookup("localhost", 443, answers.callback(loop), loop=loop, max_age=max_age)
        run_for(loop, 5)
        (result,) = answers.results
        assert not isinstance(result, Exception)
    # The first asked; the cached answer was young enough for 5 s, never for 0 s.
    assert resolver.calls == ["localhost", "localhost", "localhost"]
    answers = Answers()
    thor.dns.lookup("localhost", 443, answers.callback(loop), loop=loop)
    run_for(loop, 5)
    assert len(resolver.calls) == 3  # what max_age=0 fetched is in the cache for the others


def test_unknown_name_is_a_dns_error_on_the_loop_thread(
    loop: Loop, resolver: CountingResolver
) -> None:
    answers = Answers()
    thor.dns.lookup("no-such-host.invalid", 80, answers.callback(loop), loop=loop)
    assert answers.results == []  # never synchronously, not even for errors
    run_for(loop, 5)
    (error,) = answers.results
    assert isinstance(error, thor.dns.DnsError)
    assert isinstance(error, OSError)
    assert error.errno == socket.EAI_NONAME
    assert "no-such-host.invalid" in str(error)
    assert answers.threads == [threading.get_ident()]
    # Failures are not cached: the next lookup asks again.
    thor.dns.lookup("no-such-host.invalid", 80, answers.callback(loop, 2), loop=loop)
    run_for(loop, 5)
    assert resolver.calls == ["no-such-host.invalid"] * 2


def test_concurrent_lookups_share_one_query(loop: Loop, resolver: CountingResolver) -> None:
    resolver.gate = threading.Event()
    answers = Answers()
    for _ in range(5):
        thor.dns.lookup("localhost", 80, answers.callback(loop, 5), loop=loop)
    loop.schedule(0.05, resolver.gate.set)  # every lookup is made before the answer
    run_for(loop, 5)
    assert resolver.calls == ["localhost"]
    assert len(answers.results) == 5
    assert all(result == answers.results[0] for result in answers.results)
    assert isinstance(answers.results[0], list)


def test_each_loop_gets_its_own_answer(loop: Loop, resolver: CountingResolver) -> None:
    """A query in flight for one loop is not shared with another loop."""
    resolver.gate = threading.Event()
    other = thor.loop.make()
    other.fatal_errors = True
    try:
        mine, theirs = Answers(), Answers()
        thor.dns.lookup("localhost", 80, mine.callback(loop), loop=loop)
        thor.dns.lookup("localhost", 80, theirs.callback(other), loop=other)
        resolver.gate.set()
        run_for(loop, 5)
        assert len(mine.results) == 1
        assert theirs.results == []  # not called on this loop's thread
        run_for(other, 5)
        assert theirs.results == mine.results
    finally:
        other.close()
