"""HPACK (RFC 7541): every example of Appendix C byte for byte, round trips, bad inputs."""

from __future__ import annotations

import hpack as oracle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thor.http2.protocol import huffman
from thor.http2.protocol.errors import HeaderListTooLarge, HpackError
from thor.http2.protocol.hpack import Decoder, Encoder, decode_integer, encode_integer


def unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def table(side: Decoder | Encoder) -> list[tuple[bytes, bytes]]:
    return list(side.table.entries)


# C.1: integer representation.
@pytest.mark.parametrize(
    ("value", "prefix", "encoded"),
    [(10, 5, "0a"), (1337, 5, "1f9a0a"), (42, 8, "2a"), (31, 5, "1f00"), (0, 7, "00")],
)
def test_c1_integers(value: int, prefix: int, encoded: str) -> None:
    assert encode_integer(value, prefix) == unhex(encoded)
    assert decode_integer(unhex(encoded), 0, prefix) == (value, len(unhex(encoded)))


@given(st.integers(0, 2**32), st.integers(1, 8))
def test_integers_round_trip(value: int, prefix: int) -> None:
    data = encode_integer(value, prefix)
    assert decode_integer(data, 0, prefix) == (value, len(data))


def test_integer_overflow_and_truncation_are_errors() -> None:
    with pytest.raises(HpackError, match="overflow"):
        decode_integer(b"\x1f" + b"\xff" * 10 + b"\x01", 0, 5)
    with pytest.raises(HpackError, match="past the end"):
        decode_integer(b"\x1f\x9a", 0, 5)


# C.2: single representations, each on a fresh table.
C2 = [
    ("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
     (b"custom-key", b"custom-header"), [(b"custom-key", b"custom-header")], 55),
    ("040c 2f73 616d 706c 652f 7061 7468", (b":path", b"/sample/path"), [], 0),
    ("1008 7061 7373 776f 7264 0673 6563 7265 74", (b"password", b"secret"), [], 0),
    ("82", (b":method", b"GET"), [], 0),
]  # fmt: skip


@pytest.mark.parametrize(("block", "field", "entries", "size"), C2)
def test_c2_single_fields(block: str, field: tuple[bytes, bytes], entries: list, size: int) -> None:
    decoder = Decoder()
    assert decoder.decode(unhex(block)) == [field]
    assert table(decoder) == entries
    assert decoder.table.size == size


REQUESTS = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
     (b":authority", b"www.example.com")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
     (b":authority", b"www.example.com"), (b"cache-control", b"no-cache")],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
     (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")],
]  # fmt: skip
REQUEST_TABLES = [
    ([(b":authority", b"www.example.com")], 57),
    ([(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    ([(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
      (b":authority", b"www.example.com")], 164),
]  # fmt: skip
DATE1, DATE2 = b"Mon, 21 Oct 2013 20:13:21 GMT", b"Mon, 21 Oct 2013 20:13:22 GMT"
URL = b"https://www.example.com"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESPONSES = [
    [(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE1), (b"location", URL)],
    [(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE1), (b"location", URL)],
    [(b":status", b"200"), (b"cache-control", b"private"), (b"date", DATE2), (b"location", URL),
     (b"content-encoding", b"gzip"), (b"set-cookie", COOKIE)],
]  # fmt: skip
RESPONSE_TABLES = [
    ([(b"location", URL), (b"date", DATE1), (b"cache-control", b"private"),
      (b":status", b"302")], 222),
    ([(b":status", b"307"), (b"location", URL), (b"date", DATE1),
      (b"cache-control", b"private")], 222),
    ([(b"set-cookie", COOKIE), (b"content-encoding", b"gzip"), (b"date", DATE2)], 215),
]  # fmt: skip

SERIES = {
    "C.3": (4096, False, REQUESTS, REQUEST_TABLES, [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]),
    "C.4": (4096, True, REQUESTS, REQUEST_TABLES, [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]),
    "C.5": (256, False, RESPONSES, RESPONSE_TABLES, [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"
        " 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70"
        " 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
        " 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
        " 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e"
        " 3d31",
    ]),
    "C.6": (256, True, RESPONSES, RESPONSE_TABLES, [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
        " 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
        " 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
        " 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SERIES))
def test_appendix_c_decodes_byte_for_byte(name: str) -> None:
    size, _, lists, tables, blocks = SERIES[name]
    decoder = Decoder(size)
    for block, fields, (entries, table_size) in zip(blocks, lists, tables, strict=True):
        assert decoder.decode(unhex(block)) == fields
        assert table(decoder) == entries
        assert decoder.table.size == table_size


@pytest.mark.parametrize("name", sorted(SERIES))
def test_appendix_c_encodes_byte_for_byte(name: str) -> None:
    size, use_huffman, lists, tables, blocks = SERIES[name]
    encoder = Encoder(size, huffman=use_huffman)
    for block, fields, (entries, table_size) in zip(blocks, lists, tables, strict=True):
        assert encoder.encode(fields).hex() == unhex(block).hex()
        assert table(encoder) == entries
        assert encoder.table.size == table_size


@pytest.mark.parametrize(
    ("coded", "plain"),
    [
        ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", b"www.example.com"),
        ("a8eb 1064 9cbf", b"no-cache"),
        ("6402", b"302"),
        ("9bd9 ab", b"gzip"),
        ("", b""),
    ],
)
def test_huffman_examples(coded: str, plain: bytes) -> None:
    assert huffman.decode(unhex(coded)) == plain
    assert huffman.encode(plain) == unhex(coded)
    assert huffman.encoded_length(plain) == len(unhex(coded))


@given(st.binary(max_size=300))
def test_huffman_round_trip_and_oracle(data: bytes) -> None:
    coded = huffman.encode(data)
    assert huffman.decode(coded) == data
    assert coded == oracle.huffman.HuffmanEncoder(
        oracle.huffman_constants.REQUEST_CODES, oracle.huffman_constants.REQUEST_CODES_LENGTH
    ).encode(data)


@pytest.mark.parametrize(
    ("coded", "why"),
    [
        ("ff ff ff ff", "EOS"),  # 30 one-bits are EOS: forbidden inside a string (§5.2)
        ("1f ff", "padding"),  # '0' (00000) then 11 one-bits: padding over 7 bits
        ("00", "padding"),  # '0' (00000) then 000: padding that is not ones
    ],
)
def test_huffman_rejects_eos_and_bad_padding(coded: str, why: str) -> None:
    with pytest.raises(HpackError, match=why):
        huffman.decode(unhex(coded))


def test_huffman_accepts_seven_bits_of_padding() -> None:
    assert huffman.decode(b"\x07") == b"0"  # 00000 then 111


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), max_size=30))
def test_round_trip_with_a_shared_table(fields: list[tuple[bytes, bytes]]) -> None:
    encoder, decoder = Encoder(256), Decoder(256, max_header_list_size=1 << 20)
    for _ in range(3):
        assert decoder.decode(encoder.encode(fields)) == fields
        assert table(decoder) == table(encoder)


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), max_size=30))
def test_the_hpack_package_decodes_what_we_encode(fields: list[tuple[bytes, bytes]]) -> None:
    encoder, peer = Encoder(), oracle.Decoder()
    for _ in range(2):
        assert peer.decode(encoder.encode(fields), raw=True) == fields


def test_we_decode_what_the_hpack_package_encodes() -> None:
    peer, decoder = oracle.Encoder(), Decoder()
    fields = [(b"x-%d" % i, b"v" * i) for i in range(50)] + RESPONSES[2]
    for _ in range(3):
        assert decoder.decode(peer.encode(fields)) == fields


def test_sensitive_fields_are_never_indexed() -> None:
    encoder = Encoder()
    block = encoder.encode(
        [(b"authorization", b"Bearer a-long-secret-token-here"), (b"cookie", b"s=1")]
    )
    assert block[0] & 0xF0 == 0x10  # §6.2.3 never indexed, static name index 23
    assert table(encoder) == []
    long_cookie = b"session=" + b"x" * 40
    encoder.encode([(b"cookie", long_cookie)])
    assert table(encoder) == [(b"cookie", long_cookie)]
    decoder = Decoder()
    assert decoder.decode(block)[0] == (b"authorization", b"Bearer a-long-secret-token-here")


def test_a_field_larger_than_the_table_empties_it_and_is_not_indexed() -> None:
    encoder, decoder = Encoder(100), Decoder(100)
    first = [(b"a", b"b")]
    decoder.decode(encoder.encode(first))
    big = [(b"big", b"x" * 200)]
    block = encoder.encode(big)
    assert block[0] & 0xF0 == 0  # without indexing: it would only empty the table
    assert decoder.decode(block) == big
    # §4.4 on the decoding side: an indexed literal bigger than the table empties it.
    assert decoder.decode(b"\x40\x03big" + bytes([0x7F, 200 - 127]) + b"x" * 200) == big
    assert decoder.table.size == 0
    assert table(decoder) == []


@pytest.mark.parametrize(
    ("block", "why"),
    [
        ("80", "index 0"),  # §6.1
        ("be", "past the table"),  # index 62, dynamic table empty
        ("7e 01 61", "past the table"),  # name index 62
        ("3fe2 1f", "over the setting"),  # size update to 4097 > 4096
        ("82 20", "after a field"),  # size update after a field (§4.2)
        ("0f", "past the end"),
        ("00 05 61", "past the end"),  # string longer than the block
        ("00 81 ff", "EOS|padding"),
    ],
)
def test_bad_blocks_are_compression_errors(block: str, why: str) -> None:
    with pytest.raises(HpackError, match=why):
        Decoder().decode(unhex(block))


def test_size_updates_at_the_start_are_allowed_and_evict() -> None:
    decoder = Decoder()
    decoder.decode(unhex(SERIES["C.3"][4][0]))
    assert decoder.table.size == 57
    assert decoder.decode(b"\x20\x3f\xe1\x1f\x82") == [(b":method", b"GET")]  # 0 then 4096
    assert decoder.table.size == 0
    assert decoder.table.max_size == 4096


def test_encoder_signals_a_smaller_table_then_the_final_size() -> None:
    encoder, decoder = Encoder(), Decoder()
    decoder.decode(encoder.encode([(b"x-a", b"1")]))
    encoder.set_max_table_size(0)
    encoder.set_max_table_size(2048)
    block = encoder.encode([(b"x-b", b"2")])
    assert block[:1] == b"\x20"  # §4.2: the minimum first
    assert decoder.decode(block) == [(b"x-b", b"2")]
    assert table(decoder) == table(encoder) == [(b"x-b", b"2")]
    assert decoder.table.max_size == 2048


def test_an_hpack_bomb_decodes_in_bounded_memory_and_fails() -> None:
    # One 4,000-byte entry, then referenced 10,000 times: 40 MB if the decoder kept it all.
    entry = b"\x40\x01a" + encode_integer(4000, 7) + b"b" * 4000
    block = entry + b"\xbe" * 10_000
    decoder = Decoder(max_header_list_size=65536)
    with pytest.raises(HeaderListTooLarge) as caught:
        decoder.decode(block)
    assert caught.value.size > 65536
    assert table(decoder) == [(b"a", b"b" * 4000)]  # the table kept in step


@given(
    st.lists(
        st.lists(
            st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=60)), max_size=20
        ),
        max_size=5,
    )
)
def test_we_decode_any_sequence_the_hpack_package_encodes(lists: list) -> None:
    peer, decoder = oracle.Encoder(), Decoder(max_header_list_size=1 << 20)
    peer.header_table_size = 256  # evictions, and a size update at the start of a block
    for fields in lists:
        assert decoder.decode(peer.encode(fields)) == fields


def test_a_block_ending_where_a_string_should_start_is_an_hpack_error() -> None:
    # A literal with a new name (0x00) and nothing after it: found by the fuzz property.
    with pytest.raises(HpackError):
        Decoder().decode(b"\x00")
    with pytest.raises(HpackError):
        Decoder().decode(b"\x00\x01a")  # the name, then no value
