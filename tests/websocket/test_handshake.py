"""The opening handshake (RFC 6455 §4), both sides, every acceptance and refusal."""

from __future__ import annotations

import pytest

from thor.websocket.protocol import (
    DeflateConfig,
    HandshakeError,
    HandshakeResponseError,
    UnsupportedVersionError,
    accept,
    accept_value,
    client_request,
    read_request,
)
from thor.websocket.protocol.handshake import parse_extensions

from .helpers import counter_random

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example


def good_headers(**extra: bytes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"Host", b"server.example.com"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", KEY),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    headers += [(k.replace("_", "-").encode(), v) for k, v in extra.items()]
    return headers


def without(headers: list[tuple[bytes, bytes]], name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers if n.lower() != name.lower()]


def replaced(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [*without(good_headers(), name), (name, value)]


def test_accept_value_is_the_rfc_example() -> None:
    assert accept_value(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # §1.3


def test_a_valid_request_is_accepted() -> None:
    request = read_request(b"GET", b"1.1", good_headers())
    answer = accept(request)
    assert answer.headers == [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]
    assert answer.subprotocol is None
    assert answer.deflate is None


def test_tokens_are_case_insensitive_and_lists() -> None:
    headers = [
        *without(without(good_headers(), b"upgrade"), b"connection"),
        (b"upgrade", b"WebSocket"),
        (b"connection", b"keep-alive, UPGRADE"),
    ]
    assert read_request(b"GET", b"1.1", headers).key == KEY


@pytest.mark.parametrize(
    ("method", "version", "headers", "why"),
    [
        (b"POST", b"1.1", good_headers(), "GET"),
        (b"GET", b"1.0", good_headers(), "HTTP/1.1"),
        (b"GET", b"1.1", without(good_headers(), b"host"), "Host"),
        (b"GET", b"1.1", without(good_headers(), b"upgrade"), "Upgrade"),
        (b"GET", b"1.1", replaced(b"Upgrade", b"h2c"), "Upgrade"),
        (b"GET", b"1.1", without(good_headers(), b"connection"), "Connection"),
        (b"GET", b"1.1", replaced(b"Connection", b"keep-alive"), "Connection"),
        (b"GET", b"1.1", without(good_headers(), b"sec-websocket-key"), "Key"),
        (b"GET", b"1.1", replaced(b"Sec-WebSocket-Key", b"c2hvcnQ="), "Key"),
        (b"GET", b"1.1", replaced(b"Sec-WebSocket-Key", b"not base64 at all!!!!!!="), "Key"),
        (b"GET", b"1.1", [*good_headers(), (b"Sec-WebSocket-Key", KEY)], "Key"),
        (b"GET", b"1.1", good_headers(Sec_WebSocket_Extensions=b"x; =y"), "extension"),
    ],
)
def test_a_bad_request_is_a_400(method: bytes, version: bytes, headers: list, why: str) -> None:
    with pytest.raises(HandshakeError) as info:
        read_request(method, version, headers)
    assert info.value.status == 400
    assert why in str(info.value)
    assert not isinstance(info.value, UnsupportedVersionError)


@pytest.mark.parametrize(
    "headers",
    [
        without(good_headers(), b"sec-websocket-version"),
        replaced(b"Sec-WebSocket-Version", b"8"),
        replaced(b"Sec-WebSocket-Version", b"13, 8"),
    ],
)
def test_a_wrong_version_is_a_426_naming_13(headers: list) -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        read_request(b"GET", b"1.1", headers)
    assert info.value.status == 426
    assert info.value.headers == [(b"Sec-WebSocket-Version", b"13")]


def test_subprotocol_is_the_servers_first_choice_the_client_offered() -> None:
    request = read_request(b"GET", b"1.1", good_headers(Sec_WebSocket_Protocol=b"chat, superchat"))
    assert request.subprotocols == ["chat", "superchat"]
    answer = accept(request, subprotocols=["superchat", "chat"])
    assert answer.subprotocol == "superchat"
    assert (b"Sec-WebSocket-Protocol", b"superchat") in answer.headers
    assert accept(request, subprotocols=["other"]).subprotocol is None


def test_extra_response_headers_are_appended() -> None:
    request = read_request(b"GET", b"1.1", good_headers())
    assert accept(request, headers=[(b"X-A", b"1")]).headers[-1] == (b"X-A", b"1")


def test_parse_extensions() -> None:
    values = [b'permessage-deflate; client_max_window_bits, x-foo; a="1 0"; b=c', b", ,y"]
    assert parse_extensions(values) == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        ("x-foo", [("a", "1 0"), ("b", "c")]),
        ("y", []),
    ]
    for bad in (b"a;", b"a b", b"a; b=", b";"):
        with pytest.raises(ValueError, match="bad extension"):
            parse_extensions([bad])


# --- client side -----------------------------------------------------------------------


def server_answer(hello_key: bytes, **extra: bytes) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", accept_value(hello_key)),
    ]
    return headers + [(k.replace("_", "-").encode(), v) for k, v in extra.items()]


def test_client_request_headers() -> None:
    hello = client_request(
        b"example.com",
        subprotocols=["chat", "v2"],
        deflate=DeflateConfig(),
        headers=[(b"Origin", b"http://example.com")],
        random=counter_random,
    )
    assert hello.key == b"AwoRGB8mLTQ7QklQV15lbA=="
    assert hello.headers == [
        (b"Host", b"example.com"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", hello.key),
        (b"Sec-WebSocket-Version", b"13"),
        (b"Sec-WebSocket-Protocol", b"chat, v2"),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"),
        (b"Origin", b"http://example.com"),
    ]
    # What a server makes of it.
    request = read_request(b"GET", b"1.1", hello.headers)
    answer = accept(request, subprotocols=["v2"], deflate=DeflateConfig())
    checked = hello.check(101, answer.headers)
    assert checked.subprotocol == "v2"
    assert checked.deflate == answer.deflate


def test_client_accepts_a_plain_answer() -> None:
    hello = client_request(b"h", random=counter_random)
    answer = hello.check(101, server_answer(hello.key))
    assert (answer.subprotocol, answer.deflate) == (None, None)


@pytest.mark.parametrize(
    ("status", "mutate", "why"),
    [
        (200, lambda h: h, "status 200"),
        (101, lambda h: without(h, b"upgrade"), "Upgrade"),
        (101, lambda h: without(h, b"connection"), "Connection"),
        (
            101,
            lambda h: [*without(h, b"sec-websocket-accept"), (b"Sec-WebSocket-Accept", b"x")],
            "Accept",
        ),
        (101, lambda h: without(h, b"sec-websocket-accept"), "Accept"),
        (101, lambda h: [*h, (b"Sec-WebSocket-Protocol", b"other")], "not offered"),
        (101, lambda h: [*h, (b"Sec-WebSocket-Protocol", b"chat, chat")], "not offered"),
        (101, lambda h: [*h, (b"Sec-WebSocket-Extensions", b"x-other")], "did not offer"),
        (101, lambda h: [*h, (b"Sec-WebSocket-Extensions", b"a b")], "bad extension"),
    ],
)
def test_client_fails_a_bad_answer(status: int, mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    hello = client_request(b"h", subprotocols=["chat"], random=counter_random)
    with pytest.raises(HandshakeResponseError, match=why) as info:
        hello.check(status, mutate(server_answer(hello.key)))
    assert info.value.status == 502


def test_client_fails_deflate_it_did_not_offer() -> None:
    hello = client_request(b"h", random=counter_random)
    headers = [*server_answer(hello.key), (b"Sec-WebSocket-Extensions", b"permessage-deflate")]
    with pytest.raises(HandshakeResponseError, match="did not offer"):
        hello.check(101, headers)


def test_client_fails_a_subprotocol_when_it_offered_none() -> None:
    hello = client_request(b"h", random=counter_random)
    with pytest.raises(HandshakeResponseError, match="not offered"):
        hello.check(101, [*server_answer(hello.key), (b"Sec-WebSocket-Protocol", b"chat")])
