"""The sans-IO PROXY protocol parser: each header fed whole, a byte at a time and split at
every offset, with trailing data; malformed headers fail with their own error class."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thor.proxy_protocol import (
    V2_SIGNATURE,
    AddressError,
    Family,
    FamilyError,
    HeaderTooLongError,
    PortError,
    ProxyHeader,
    ProxyHeaderParser,
    ProxyProtocolError,
    SignatureError,
    Transport,
    VersionError,
)
from thor.proxy_protocol.parser import MOVES, Stage

TRAILING = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def v2(
    command: int = 0x1,
    family: int = 0x1,
    transport: int = 0x1,
    body: bytes = b"",
    version: int = 0x2,
    length: int | None = None,
) -> bytes:
    size = len(body) if length is None else length
    return (
        V2_SIGNATURE
        + bytes([version << 4 | command, family << 4 | transport])
        + struct.pack("!H", size)
        + body
    )


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.ip_address(src).packed
        + ipaddress.ip_address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def feed_all(chunks: list[bytes]) -> tuple[ProxyHeader, bytes]:
    """Feed the chunks in turn; the header must come with the last one that completes it."""
    parser = ProxyHeaderParser()
    header = None
    for chunk in chunks:
        got = parser.feed(chunk)
        if header is None:
            header = got
        else:
            assert got is header
    assert header is not None, "the header never completed"
    return header, parser.trailing_data


def ways_to_feed(data: bytes) -> list[list[bytes]]:
    """Whole, one byte at a time, and split in two at every offset."""
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    ways += [[data[:i], data[i:]] for i in range(1, len(data))]
    return ways


GOOD = [
    (
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        ProxyHeader(
            1,
            False,
            Family.INET,
            Transport.STREAM,
            ("192.0.2.1", 56324),
            ("198.51.100.2", 443),
            45,
        ),
    ),
    (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
        ProxyHeader(
            1,
            False,
            Family.INET6,
            Transport.STREAM,
            ("2001:db8::1", 0),
            ("2001:db8::2", 65535),
            44,
        ),
    ),
    (
        b"PROXY UNKNOWN\r\n",
        ProxyHeader(1, False, Family.UNSPEC, Transport.UNSPEC, None, None, 15),
    ),
    (
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        ProxyHeader(1, False, Family.UNSPEC, Transport.UNSPEC, None, None, 35),
    ),
    (
        v2(body=inet("192.0.2.1", "198.51.100.2", 56324, 443)),
        ProxyHeader(
            2,
            False,
            Family.INET,
            Transport.STREAM,
            ("192.0.2.1", 56324),
            ("198.51.100.2", 443),
            28,
        ),
    ),
    (
        v2(family=0x2, body=inet("2001:db8::1", "2001:db8::2", 1, 2) + tlv(0xEA, b"vpce-1")),
        ProxyHeader(
            2,
            False,
            Family.INET6,
            Transport.STREAM,
            ("2001:db8::1", 1),
            ("2001:db8::2", 2),
            61,
            ((0xEA, b"vpce-1"),),
        ),
    ),
    (  # LOCAL (a health check by the proxy): addresses and TLVs skipped
        v2(command=0x0, family=0x1, body=inet("10.0.0.1", "10.0.0.2", 1, 2) + b"\x01\x00"),
        ProxyHeader(2, True, Family.INET, Transport.STREAM, None, None, 30),
    ),
    (  # LOCAL with UNSPEC and nothing after
        v2(command=0x0, family=0x0, transport=0x0),
        ProxyHeader(2, True, Family.UNSPEC, Transport.UNSPEC, None, None, 16),
    ),
    (  # PROXY with UNSPEC: the real endpoints are kept; TLVs still read
        v2(family=0x0, transport=0x0, body=tlv(0x04, b"")),
        ProxyHeader(2, False, Family.UNSPEC, Transport.UNSPEC, None, None, 19, ((4, b""),)),
    ),
    (
        v2(family=0x3, body=b"/run/a.sock".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0")),
        ProxyHeader(2, False, Family.UNIX, Transport.STREAM, "/run/a.sock", "/run/b", 232),
    ),
    (  # DGRAM is reported, not refused: the caller decides
        v2(transport=0x2, body=inet("192.0.2.1", "192.0.2.2", 53, 53)),
        ProxyHeader(
            2, False, Family.INET, Transport.DGRAM, ("192.0.2.1", 53), ("192.0.2.2", 53), 28
        ),
    ),
]


@pytest.mark.parametrize(("data", "expected"), GOOD)
def test_a_header_fed_any_way_parses_the_same(data: bytes, expected: ProxyHeader) -> None:
    for chunks in ways_to_feed(data + TRAILING):
        header, trailing = feed_all(chunks)
        assert header == expected
        assert trailing == TRAILING


@pytest.mark.parametrize(("data", "expected"), GOOD)
def test_a_header_alone_leaves_no_trailing_data(data: bytes, expected: ProxyHeader) -> None:
    header, trailing = feed_all([data])
    assert header.length == len(data)
    assert trailing == b""


def test_bytes_fed_after_the_header_are_trailing_data() -> None:
    parser = ProxyHeaderParser()
    header = parser.feed(b"PROXY UNKNOWN\r\nGE")
    assert parser.feed(b"T /") is header
    assert parser.trailing_data == b"GET /"
    assert parser.room() == 0


def test_the_client_is_the_source_for_ip_families_only() -> None:
    assert GOOD[0][1].client == ("192.0.2.1", 56324)
    assert GOOD[2][1].client is None  # UNKNOWN
    assert GOOD[6][1].client is None  # LOCAL
    assert GOOD[9][1].client is None  # UNIX


def test_a_107_byte_v1_header_is_the_longest_accepted() -> None:
    longest = b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"
    assert len(longest) < 107  # the spec's worst case is 104; pad UNKNOWN to the limit
    line = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
    assert len(line) == 107
    header, _ = feed_all([line])
    assert header.length == 107
    with pytest.raises(HeaderTooLongError):
        ProxyHeaderParser().feed(b"PROXY UNKNOWN " + b"x" * (108 - 16) + b"\r\n")


def test_a_v1_header_without_crlf_fails_at_the_limit_fed_a_byte_at_a_time() -> None:
    parser = ProxyHeaderParser()
    data = b"PROXY UNKNOWN " + b"x" * 200
    for i in range(105):  # no CRLF yet, but one may still come at 105-106
        assert parser.feed(data[i : i + 1]) is None
    with pytest.raises(HeaderTooLongError):  # the 106th byte is not a CR: too long
        parser.feed(data[105:106])
    assert parser.stage is Stage.FAILED
    with pytest.raises(ProxyProtocolError):
        parser.feed(b"\r\n")


def feed_until_it_fails(parser: ProxyHeaderParser, chunks: list[bytes]) -> None:
    for chunk in chunks:
        parser.feed(chunk)


BAD = [
    (b"GET / HTTP/1.1\r\n\r\n", SignatureError),
    (b"PROXY\r\n", SignatureError),
    (b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", SignatureError),
    (b"\r\n\r\n\0\r\nQUIX\n" + b"\x21\x11\x00\x00", SignatureError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", SignatureError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", SignatureError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", SignatureError),
    (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", SignatureError),
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", FamilyError),
    (b"PROXY UNKNOWNX\r\n", FamilyError),
    (b"PROXY \r\n", FamilyError),
    (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", AddressError),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", AddressError),
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", AddressError),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", AddressError),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", AddressError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n", AddressError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", PortError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", PortError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", PortError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n", PortError),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n", PortError),
    (v2(version=0x1, body=inet("1.2.3.4", "1.2.3.4", 1, 2)), VersionError),
    (v2(command=0x2, body=inet("1.2.3.4", "1.2.3.4", 1, 2)), VersionError),
    (v2(family=0x4, body=inet("1.2.3.4", "1.2.3.4", 1, 2)), FamilyError),
    (v2(transport=0x3, body=inet("1.2.3.4", "1.2.3.4", 1, 2)), FamilyError),
    (v2(body=b"\x01\x02\x03\x04"), AddressError),  # INET needs 12 bytes
    (v2(family=0x2, body=inet("1.2.3.4", "1.2.3.4", 1, 2)), AddressError),  # INET6: 36
    (v2(length=4097), HeaderTooLongError),
    (v2(length=65535), HeaderTooLongError),
    (v2(body=inet("1.2.3.4", "1.2.3.4", 1, 2) + b"\x01\x00"), HeaderTooLongError),
    (v2(body=inet("1.2.3.4", "1.2.3.4", 1, 2) + b"\x01\x00\x05abc"), HeaderTooLongError),
]


@pytest.mark.parametrize(("data", "error"), BAD)
def test_a_malformed_header_fails_with_its_class(
    data: bytes, error: type[ProxyProtocolError]
) -> None:
    for chunks in ways_to_feed(data):
        parser = ProxyHeaderParser()
        with pytest.raises(error) as caught:
            feed_until_it_fails(parser, chunks)
        assert caught.value.status == 400
        assert parser.stage is Stage.FAILED


def test_garbage_fails_at_its_first_byte_without_waiting() -> None:
    with pytest.raises(SignatureError):
        ProxyHeaderParser().feed(b"G")
    with pytest.raises(SignatureError):
        ProxyHeaderParser().feed(b"\x16\x03\x01")  # a TLS ClientHello without a header
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROX") is None
    assert parser.feed(b"\r\n\r\n"[:0]) is None
    with pytest.raises(SignatureError):
        ProxyHeaderParser().feed(b"\r\n\r\n\0\r\nQUIT\r")


def test_a_truncated_header_waits_for_more() -> None:
    for data, _ in GOOD:
        parser = ProxyHeaderParser()
        assert parser.feed(data[:-1]) is None
        assert parser.stage is not Stage.DONE


def test_room_is_what_may_still_belong_to_the_header() -> None:
    parser = ProxyHeaderParser(max_v2_length=100)
    assert parser.room() == 116  # v2's most (16 + 100) beats v1's 107
    parser.feed(b"PROXY T")
    assert parser.room() == 100  # v1: 107 in all
    parser = ProxyHeaderParser()
    parser.feed(v2(body=inet("1.2.3.4", "1.2.3.4", 1, 2))[:17])
    assert parser.room() == 11  # 16 + 12, 17 fed


def test_the_stage_table_refuses_an_unlisted_move() -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(RuntimeError):
        parser._move(Stage.DONE)
    assert all(stage in MOVES for stage in Stage)


def test_a_larger_v2_limit_admits_larger_tlvs() -> None:
    big = v2(body=inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x20, b"x" * 5000))
    with pytest.raises(HeaderTooLongError):
        ProxyHeaderParser().feed(big)
    header = ProxyHeaderParser(max_v2_length=6000).feed(big)
    assert header is not None
    assert header.tlvs == ((0x20, b"x" * 5000),)


PREFIXES = st.sampled_from([b"", b"PROXY ", b"PROXY TCP4 ", V2_SIGNATURE, V2_SIGNATURE + b"\x21"])


@given(PREFIXES, st.lists(st.binary(max_size=64), max_size=6))
def test_any_bytes_give_none_a_header_or_a_proxy_protocol_error(
    prefix: bytes, chunks: list[bytes]
) -> None:
    """The h11 fuzz invariant: nothing but None, a header, or ProxyProtocolError."""
    parser = ProxyHeaderParser(max_v2_length=64)
    try:
        for chunk in [prefix, *chunks]:
            result = parser.feed(chunk)
            assert result is None or isinstance(result, ProxyHeader)
            assert parser.room() >= 0
    except ProxyProtocolError:
        assert parser.stage is Stage.FAILED
