"""Balancing algorithms, candidate selection, hash keys and retry budgets."""

from __future__ import annotations

from collections import Counter

import pytest

from thor_gateway.proxy import balancer as bal
from thor_gateway.proxy.retries import RetryBudget
from thor_gateway.proxy.upstreams import Upstream, parse_target


def member(port: int, weight: int = 1, max_connections: int | None = None) -> Upstream:
    spec: dict[str, object] = {"url": f"http://127.0.0.1:{port}", "weight": weight}
    if max_connections is not None:
        spec["max_connections"] = max_connections
    return Upstream(parse_target(spec), "127.0.0.1")


def picks(
    b: bal.Balancer, members: list[Upstream], n: int, key: bytes | None = None
) -> Counter[int]:
    counts: Counter[int] = Counter()
    for _ in range(n):
        chosen = bal.choose(b, members, 0.0, key)
        assert chosen is not None
        counts[chosen.target.port] += 1
    return counts


def test_round_robin_spreads_evenly() -> None:
    members = [member(p) for p in (1, 2, 3)]
    assert picks(bal.RoundRobin(), members, 300) == {1: 100, 2: 100, 3: 100}


def test_smooth_weighted_follows_weights_and_interleaves() -> None:
    members = [member(1, 5), member(2, 1), member(3, 1)]
    b = bal.SmoothWeighted()
    order = [bal.choose(b, members, 0.0).target.port for _ in range(7)]  # type: ignore[union-attr]
    assert order == [1, 1, 2, 1, 3, 1, 1]
    assert picks(b, members, 700) == {1: 500, 2: 100, 3: 100}


def test_least_connections_prefers_the_least_loaded_per_weight() -> None:
    a, b, c = member(1), member(2), member(3, weight=4)
    a.active, b.active, c.active = 3, 1, 3
    lc = bal.LeastConnections()
    assert bal.choose(lc, [a, b, c], 0.0) is c  # 3/4 < 1/1
    c.active = 8
    assert bal.choose(lc, [a, b, c], 0.0) is b
    # ties are shared, not always the first
    a.active = b.active = c.active = 0
    assert set(picks(lc, [a, b], 10)) == {1, 2}


def test_consistent_hash_is_stable_and_moves_few_keys() -> None:
    members = [member(p) for p in range(1, 6)]
    ring = bal.ConsistentHash()
    keys = [b"user-%d" % i for i in range(2000)]
    before = {k: bal.choose(ring, members, 0.0, k) for k in keys}
    again = {k: bal.choose(ring, members, 0.0, k) for k in keys}
    assert before == again
    load = Counter(m.target.port for m in before.values())  # type: ignore[union-attr]
    assert min(load.values()) > 250  # 400 expected each; a ring of 100 points per member
    # one member leaves: only its keys move
    gone = members[2]
    rest = [m for m in members if m is not gone]
    after = {k: bal.choose(ring, rest, 0.0, k) for k in keys}
    moved = [k for k in keys if before[k] is not gone and after[k] is not before[k]]
    assert moved == []
    assert all(after[k] is not gone for k in keys)


def test_consistent_hash_skips_unavailable_members_and_falls_back_without_key() -> None:
    members = [member(1), member(2), member(3)]
    ring = bal.ConsistentHash()
    key = b"sticky"
    home = bal.choose(ring, members, 0.0, key)
    assert home is not None
    home.ejection.max_fails = 1
    home.ejection.failure(0.0)
    other = bal.choose(ring, members, 1.0, key)
    assert other is not None
    assert other is not home
    assert bal.choose(ring, members, 1.0, key) is other  # stable while it is out
    assert bal.choose(ring, members, 100.0, key) is home  # back after the ejection
    assert set(picks(ring, members, 30)) == {1, 2, 3}  # no key: round robin


def test_choose_excludes_tried_and_full_members() -> None:
    a, b = member(1, max_connections=1), member(2)
    b.active = 0
    assert bal.choose(bal.RoundRobin(), [a, b], 0.0, exclude=[b]) is a
    a.active = 1
    assert bal.choose(bal.RoundRobin(), [a, b], 0.0, exclude=[b]) is None
    assert bal.choose(bal.RoundRobin(), [a], 0.0) is None  # single member, full


def test_choose_panics_when_nothing_is_in_service() -> None:
    a, b = member(1), member(2)
    for m in (a, b):
        m.health.observe(False)
        m.health.observe(False)
        m.health.observe(False)
        assert not m.health.up
    assert bal.choose(bal.RoundRobin(), [a, b], 0.0) in (a, b)
    b.health.observe(True)
    b.health.observe(True)
    assert [bal.choose(bal.RoundRobin(), [a, b], 0.0) for _ in range(4)] == [b] * 4


def test_make_balancer_and_key_functions() -> None:
    assert isinstance(bal.make_balancer("least-connections"), bal.LeastConnections)
    with pytest.raises(ValueError, match="unknown balancer"):
        bal.make_balancer("random")
    headers = [(b"X-User", b"alice"), (b"Cookie", b"a=1; session=xyz")]
    assert bal.key_function("header:x-user")(headers, None) == b"alice"
    assert bal.key_function("cookie:session")(headers, None) == b"xyz"
    assert bal.key_function("cookie:none")(headers, None) is None
    assert bal.key_function("client")(headers, ("127.0.0.1", 4)) == b"127.0.0.1"
    assert bal.key_function("client")(headers, None) is None
    with pytest.raises(ValueError, match="bad hash key"):
        bal.key_function("query:x")


def test_retry_budget_allows_a_ratio_plus_a_floor() -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0.5, window=10)
    now = 1000.0
    for _ in range(100):
        budget.request(now)
    allowed = sum(budget.allow(now) for _ in range(50))
    assert allowed == 15  # 10 % of 100, plus 0.5/s over 10 s
    assert not budget.allow(now + 5)
    # the window slides: after it, the old requests and retries no longer count
    assert budget.allow(now + 11)
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=-1)
