"""Health verdicts (active rise/fall, passive ejection) and upstream sets kept fresh by DNS."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

import thor.loop
from thor.testing import run_for
from thor_gateway.proxy.health_checks import Ejection, Health, HealthTracker, PassiveEjection
from thor_gateway.proxy.upstreams import Target, UpstreamSet, parse_target


def test_tracker_needs_fall_failures_then_rise_successes() -> None:
    t = HealthTracker(rise=2, fall=3)
    assert t.up
    assert [t.observe(False), t.observe(False)] == [False, False]
    assert t.up
    assert t.observe(True) is False  # a success resets the failure streak
    assert [t.observe(False) for _ in range(3)] == [False, False, True]
    assert t.state is Health.DOWN
    assert t.observe(True) is False
    assert t.observe(False) is False  # the success streak is broken
    assert [t.observe(True), t.observe(True)] == [False, True]
    assert t.up
    with pytest.raises(ValueError, match="at least 1"):
        HealthTracker(rise=0)


def test_passive_ejection_probation_and_backoff() -> None:
    e = PassiveEjection(max_fails=2, eject_time=10.0, max_eject_time=25.0)
    e.failure(0.0)
    assert e.admits(0.0)
    e.failure(1.0)
    assert e.state is Ejection.EJECTED
    assert not e.admits(10.9)
    assert e.admits(11.0)
    assert e.state is Ejection.PROBATION
    e.failure(12.0)  # one failure on probation: out again, for twice as long
    assert e.state is Ejection.EJECTED
    assert e.until == 32.0
    assert e.admits(32.0)
    e.failure(33.0)
    assert e.until == 33.0 + 25.0  # capped
    assert e.admits(58.0)
    e.success()
    assert e.state is Ejection.IN_SERVICE
    assert e.eject_time == 10.0
    e.failure(60.0)
    e.success()  # the streak is consecutive
    e.failure(61.0)
    assert e.state is Ejection.IN_SERVICE


def test_passive_ejection_off() -> None:
    e = PassiveEjection(max_fails=0)
    for i in range(10):
        e.failure(float(i))
    assert e.admits(10.0)


def test_parse_target() -> None:
    t = parse_target({"url": "http://[::1]:8080/v1", "weight": 3, "max_connections": 9})
    assert (t.host, t.port, t.base_path, t.weight, t.max_connections) == ("::1", 8080, b"/v1", 3, 9)
    assert t.authority == b"[::1]:8080"
    assert parse_target("https://example.com").authority == b"example.com"
    assert parse_target("http://example.com:80").port == 80
    for bad in ("ftp://x", "http://x/?q=1", "http://"):
        with pytest.raises(ValueError, match="upstream"):
            parse_target(bad)
    with pytest.raises(ValueError, match="unknown settings"):
        parse_target({"url": "http://x", "colour": "red"})


class FakeResolver:
    """Answers from a table the test edits, on the loop, like thor.dns.lookup."""

    def __init__(self, answers: dict[str, list[str] | Exception]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, callback: Callable[..., Any], *, loop: Any) -> None:
        self.calls.append(host)
        answer = self.answers[host]
        if isinstance(answer, Exception):
            loop.call_soon(callback, answer)
            return
        results = [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in answer
        ]
        loop.call_soon(callback, results)


def test_upstream_set_follows_dns(loop: thor.loop.Loop) -> None:
    resolver = FakeResolver({"localhost": ["127.0.0.1"]})
    ups = UpstreamSet(
        ["http://localhost:8080/base", "http://127.0.0.1:9"],
        loop=loop,
        resolve_interval=0.05,
        resolver=resolver,
    )
    # before the first answer, the name is one member that connects by name
    assert [m.origin for m in ups.members] == ["http://localhost:8080", "http://127.0.0.1:9"]
    started: list[bool] = []
    ups.start(lambda: (started.append(True), loop.stop()))
    run_for(loop, 2)
    assert started == [True]
    assert resolver.calls == ["localhost"]  # the IP literal is not looked up
    first = ups.members[0]
    assert first.origin == "http://127.0.0.1:8080"
    assert first.authority == b"localhost:8080"
    first.active = 2  # counters survive re-resolution while the address stays

    resolver.answers["localhost"] = ["127.0.0.1", "::1"]
    version = ups.version

    def changed() -> None:
        if ups.version != version:
            loop.stop()
        else:
            loop.schedule(0.01, changed)

    loop.schedule(0.01, changed)
    run_for(loop, 2)
    assert [m.origin for m in ups.members] == [
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://127.0.0.1:9",
    ]
    assert ups.members[0] is first
    assert first.active == 2

    # a failing lookup keeps the members; an address that goes away leaves
    resolver.answers["localhost"] = OSError("no answer")
    calls = len(resolver.calls)
    loop.schedule(0.01, lambda: None)

    def waited() -> None:
        if len(resolver.calls) > calls + 1:
            loop.stop()
        else:
            loop.schedule(0.01, waited)

    loop.schedule(0.01, waited)
    run_for(loop, 2)
    assert len(ups.members) == 3
    resolver.answers["localhost"] = ["::1"]
    version = ups.version
    loop.schedule(0.01, changed)
    run_for(loop, 2)
    assert [m.origin for m in ups.members] == ["http://[::1]:8080", "http://127.0.0.1:9"]
    ups.stop()


def test_https_targets_are_not_expanded(loop: thor.loop.Loop) -> None:
    resolver = FakeResolver({})
    ups = UpstreamSet([Target("https", "localhost", 443, b"")], loop=loop, resolver=resolver)
    done: list[bool] = []
    ups.start(lambda: (done.append(True), loop.stop()))
    run_for(loop, 2)
    assert done == [True]
    assert resolver.calls == []
    assert ups.members[0].origin == "https://localhost:443"
    with pytest.raises(ValueError, match="at least one"):
        UpstreamSet([], loop=loop)
