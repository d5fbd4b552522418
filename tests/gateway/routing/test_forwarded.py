"""Proxy headers trusted only from --forwarded-allow-ips (RFC 7239 and X-Forwarded-*)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from thor_gateway.routing.forwarded import ProxyTrust, parse_forwarded

APPS = "tests.gateway.gateway_apps"
PEER = ("10.0.0.2", 5555)


def H(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(n.encode(), v.encode()) for n, v in pairs]


def test_parse_forwarded() -> None:
    assert parse_forwarded(b"for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    ]
    assert parse_forwarded(b'For="[2001:db8:cafe::17]:4711", for=unknown') == [
        {"for": "[2001:db8:cafe::17]:4711"},
        {"for": "unknown"},
    ]
    assert parse_forwarded(b'for="a\\"b"') == [{"for": 'a"b'}]
    for bad in (b"for", b'for="open', b"f@r=1"):
        assert parse_forwarded(bad) is None


def test_untrusted_peer_is_the_client() -> None:
    trust = ProxyTrust(["127.0.0.1"])
    info = trust.resolve(
        PEER, "http", H(("X-Forwarded-For", "1.2.3.4"), ("Forwarded", "for=5.6.7.8"))
    )
    assert (info.client, info.scheme, info.host) == (PEER, "http", None)


def test_x_forwarded_from_a_trusted_peer() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    info = trust.resolve(
        PEER,
        "http",
        H(
            ("X-Forwarded-For", "6.6.6.6, 1.2.3.4"),
            ("X-Forwarded-For", "10.0.0.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "example.com"),
        ),
    )
    # Rightmost address that is not a trusted proxy: 6.6.6.6 is only a claim.
    assert info.client == ("1.2.3.4", 0)
    assert (info.scheme, info.host) == ("https", b"example.com")


def test_forwarded_wins_over_x_forwarded() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    info = trust.resolve(
        PEER,
        "http",
        H(
            ("X-Forwarded-For", "9.9.9.9"),
            (
                "Forwarded",
                'for=6.6.6.6;proto=http, for="[2001:db8::1]:80";proto=https;host=a.example',
            ),
            ("Forwarded", "for=10.0.0.3"),
        ),
    )
    assert info.client == ("2001:db8::1", 80)
    assert (info.scheme, info.host) == ("https", b"a.example")


@pytest.mark.parametrize(
    ("allowed", "peer", "trusted"),
    [
        (["*"], ("8.8.8.8", 1), True),
        (["127.0.0.1", "::1"], ("::1", 1), True),
        (["127.0.0.1"], ("::ffff:127.0.0.1", 1), True),
        (["192.168.0.0/16"], ("192.168.3.4", 1), True),
        (["192.168.0.0/16"], ("192.169.0.1", 1), False),
        (["unix"], None, True),
        (["127.0.0.1"], None, False),
    ],
)
def test_trust_lists(allowed: list[str], peer: tuple[str, int] | None, trusted: bool) -> None:
    info = ProxyTrust(allowed).resolve(peer, "http", H(("X-Forwarded-Proto", "https")))
    assert (info.scheme == "https") is trusted


def test_trusts_peer_takes_what_accept_gives() -> None:
    # --proxy-protocol asks per connection, with the address as accept() returned it.
    trust = ProxyTrust(["10.0.0.0/8", "::1"])
    assert trust.trusts_peer(("10.1.2.3", 5000))
    assert trust.trusts_peer(("::ffff:10.1.2.3", 5000, 0, 0))  # dual-stack listener
    assert trust.trusts_peer(("::1", 1, 0, 0))
    assert not trust.trusts_peer(("192.0.2.1", 5000))
    assert not trust.trusts_peer("")  # a UNIX socket's peer, without "unix" listed
    assert ProxyTrust(["unix"]).trusts_peer("")
    assert not ProxyTrust(["unix"]).trusts_peer(("127.0.0.1", 1))


def test_bad_values_are_ignored() -> None:
    trust = ProxyTrust(["*"])
    info = trust.resolve(PEER, "http", H(("X-Forwarded-Proto", "gopher"), ("X-Forwarded-For", "x")))
    assert (info.client, info.scheme) == (None, "http")
    with pytest.raises(ValueError, match="not an IP"):
        ProxyTrust(["localhost"])


@pytest.mark.parametrize(("allow", "expected"), [(None, "203.0.113.9"), ("10.1.1.1", "127.0.0.1")])
def test_e2e_trust_on_and_off(start_gateway: Any, allow: str | None, expected: str) -> None:
    args = [f"{APPS}:info", "-b", "127.0.0.1:0"]
    if allow:
        args += ["--forwarded-allow-ips", allow]
    gateway = start_gateway(*args)
    seen = requests.get(
        gateway.url + "/",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        timeout=10,
    ).json()
    assert seen["remote_addr"] == expected
    assert seen["scheme"] == ("https" if allow is None else "http")


def test_e2e_environment_variable(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", env={"FORWARDED_ALLOW_IPS": "10.9.9.9"}
    )
    seen = requests.get(
        gateway.url + "/", headers={"Forwarded": "for=203.0.113.9"}, timeout=10
    ).json()
    assert seen["remote_addr"] == "127.0.0.1"


def test_b55_underscore_names_are_not_proxy_headers(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0")
    alone = requests.get(gateway.url + "/", headers={"X_Forwarded_For": "1.2.3.4"}, timeout=10)
    assert alone.json()["remote_addr"] == "127.0.0.1"
    assert alone.json()["x_forwarded_for"] is None
    both = [("X_Forwarded_For", "1.2.3.4"), ("X-Forwarded-For", "5.6.7.8")]
    for pairs in (both, both[::-1]):
        seen = requests.get(gateway.url + "/", headers=dict(pairs), timeout=10).json()
        assert seen["remote_addr"] == "5.6.7.8"
        assert seen["x_forwarded_for"] == "5.6.7.8"


@given(value=st.binary(max_size=200), peer_trusted=st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_header_bytes_are_handled(value: bytes, peer_trusted: bool) -> None:
    """Whatever a client sends in these fields: a result, never an exception."""
    parsed = parse_forwarded(value)
    assert parsed is None or isinstance(parsed, list)
    trust = ProxyTrust(["10.0.0.0/8"] if peer_trusted else ["192.0.2.1"])
    for name in (b"Forwarded", b"X-Forwarded-For", b"X-Forwarded-Proto", b"X-Forwarded-Host"):
        info = trust.resolve(PEER, "http", [(name, value)])
        assert info.scheme in ("http", "https")
        assert info.client is None or isinstance(info.client[0], str)
