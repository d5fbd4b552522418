"""Framing (RFC 6455 §5): messages, fragments, control frames, and every MUST-fail case."""

from __future__ import annotations

import pytest

from thor.websocket.protocol import (
    BytesFragment,
    BytesMessage,
    ConnectionState,
    Ping,
    Pong,
    ProtocolError,
    TextFragment,
    TextMessage,
    WebSocketStateError,
    frames,
)

from .helpers import KEY, client, client_frame, feed, server, server_frame, splits, xor


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 100_003])
def test_mask_matches_the_obvious_loop(size: int, masking: str) -> None:
    data = bytes((i * 31) & 0xFF for i in range(size))
    assert frames.mask(data, KEY) == xor(data, KEY)
    assert frames.mask(frames.mask(data, KEY), KEY) == data
    assert type(frames.mask(data, KEY)) is bytes


@pytest.mark.parametrize("size", [0, 5, 2047, 2048, 2051, 65536])
@pytest.mark.parametrize("start", [0, 1, 2, 3, 14])
def test_mask_range_is_mask_of_the_slice(size: int, start: int, masking: str) -> None:
    buf = bytes((i * 7 + 3) & 0xFF for i in range(start + size + 5))
    out = frames.mask_range(buf, start, start + size, KEY)
    assert out == xor(buf[start : start + size], KEY)
    assert type(out) is bytes


@pytest.mark.parametrize("size", [5, 2047, 2048, 2051, 65536])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_unmask_leaves_its_input_alone(size: int, kind: type, masking: str) -> None:
    # Large payloads are unmasked in a copy (the standard library's: a bytearray, handed on
    # without a copy to bytes; the accelerator's: bytes); the read buffer they come from must
    # not change, whatever its type.
    original = bytes((i * 7 + 3) & 0xFF for i in range(size + 7))
    buf = kind(bytearray(original)) if kind is memoryview else kind(original)
    out = frames.unmask(buf, 3, 3 + size, KEY)
    assert out == xor(original[3 : 3 + size], KEY)
    stdlib_large = masking == frames.STDLIB and size >= 2048
    assert type(out) is (bytearray if stdlib_large else bytes)
    assert bytes(buf) == original


@pytest.mark.parametrize("size", [2048, 65536])
def test_large_messages_are_bytes_and_str(size: int, masking: str) -> None:
    # The unmasked payload becomes bytes for a binary message, str for a text one.
    data = bytes(range(256)) * (size // 256)
    [binary] = server().receive_data(client_frame(0x2, data))
    assert type(binary.data) is bytes
    assert binary.data == data
    text = "é" * (size // 2)
    [message] = server().receive_data(client_frame(0x1, text.encode()))
    assert message == TextMessage(text)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_lengths_use_the_minimal_encoding(size: int) -> None:
    frame = server().send_bytes(b"x" * size)
    expected_header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(frame) == expected_header + size
    assert client().receive_data(frame) == [BytesMessage(b"x" * size)]


@pytest.mark.parametrize("size", [0, 5, 126, 70000])
def test_client_frames_are_masked_and_read_back(size: int, masking: str) -> None:
    c = client()
    frame = c.send_text("y" * size)
    assert frame[1] & 0x80
    assert server().receive_data(frame) == [TextMessage("y" * size)]


def test_masking_keys_come_from_the_random_source() -> None:
    calls = []

    def source(n: int) -> bytes:
        calls.append(n)
        return bytes([9]) * n

    from thor.websocket.protocol import Connection

    c = Connection("client", random=source)
    frames = [c.send_bytes(b"ab") for _ in range(300)]
    assert frames[0][2:6] == b"\x09\x09\x09\x09"
    assert calls == [1024, 1024], "keys are drawn in batches"


SEQUENCE = (
    client_frame(0x1, "hé".encode(), fin=False)
    + client_frame(0x9, b"ping!")
    + client_frame(0x0, b"llo ", fin=False)
    + client_frame(0x0, b"", fin=False)
    + client_frame(0x0, "wörld".encode())
    + client_frame(0x2, b"\x00\x01")
    + client_frame(0xA, b"")
)


def test_fragmented_message_with_a_ping_in_between_every_split(masking: str) -> None:
    for pieces in splits(SEQUENCE):
        assert feed(server(), pieces) == [
            Ping(b"ping!"),
            TextMessage("héllo wörld"),
            BytesMessage(b"\x00\x01"),
            Pong(b""),
        ]


def test_fragments_when_asked(masking: str) -> None:
    # "é" is split across two frames: its text comes whole with the second.
    wire = (
        client_frame(0x1, b"h\xc3", fin=False)
        + client_frame(0x0, b"\xa9!")
        + client_frame(0x2, b"ab", fin=False)
        + client_frame(0x0, b"cd")
    )
    for pieces in splits(wire):
        events = feed(server(fragments=True), pieces)
        # Byte by byte, each frame still gives one fragment event.
        assert events == [
            TextFragment("h", False),
            TextFragment("é!", True),
            BytesFragment(b"ab", False),
            BytesFragment(b"cd", True),
        ]


def test_server_frames_read_by_a_client_split_everywhere() -> None:
    wire = server_frame(0x1, b"hello") + server_frame(0x2, b"x" * 300) + server_frame(0x9, b"p")
    for pieces in splits(wire):
        assert feed(client(), pieces) == [
            TextMessage("hello"),
            BytesMessage(b"x" * 300),
            Ping(b"p"),
        ]


def test_sending_fragments() -> None:
    c = server()
    wire = c.send_text("ab", final=False) + c.send_text("cd", final=False) + c.send_text("e")
    assert (wire[0], wire[4], wire[8]) == (0x01, 0x00, 0x80)
    assert client().receive_data(wire) == [TextMessage("abcde")]
    c.send_text("x", final=False)
    with pytest.raises(WebSocketStateError, match="fragments"):
        c.send_bytes(b"y")


def test_pong_answers_a_ping_with_its_payload() -> None:
    s = server()
    [ping] = s.receive_data(client_frame(0x9, b"hello"))
    assert isinstance(ping, Ping)
    assert s.pong(ping.payload) == server_frame(0xA, b"hello")
    with pytest.raises(ValueError, match="125"):
        s.ping(b"x" * 126)


# --- every fail-the-connection case, with its close code ---------------------------------


def non_utf8_fragmented() -> bytes:
    return client_frame(0x1, b"ok", fin=False) + client_frame(0x0, b"\xff", fin=False)


FAILURES = [
    ("unmasked frame to a server", server_frame(0x1, b"x"), 1002),
    ("RSV1 without extension", client_frame(0x1, b"x", rsv=4), 1002),
    ("RSV2", client_frame(0x1, b"x", rsv=2), 1002),
    ("RSV3", client_frame(0x1, b"x", rsv=1), 1002),
    ("opcode 3", client_frame(0x3), 1002),
    ("opcode 7", client_frame(0x7), 1002),
    ("opcode 11", client_frame(0xB), 1002),
    ("opcode 15", client_frame(0xF), 1002),
    ("long ping", client_frame(0x9, b"x" * 126), 1002),
    ("fragmented ping", client_frame(0x9, b"x", fin=False), 1002),
    ("fragmented close", client_frame(0x8, b"", fin=False), 1002),
    ("continuation first", client_frame(0x0, b"x"), 1002),
    ("text inside text", client_frame(0x1, b"a", fin=False) + client_frame(0x1, b"b"), 1002),
    ("binary inside text", client_frame(0x1, b"a", fin=False) + client_frame(0x2, b"b"), 1002),
    ("16-bit length under 126", client_frame(0x2, b"x" * 10, length_bytes=2), 1002),
    ("64-bit length under 65536", client_frame(0x2, b"x" * 200, length_bytes=8), 1002),
    ("64-bit length top bit", client_frame(0x2, b"", length_bytes=8, length=1 << 63), 1002),
    ("close of one byte", client_frame(0x8, b"\x03"), 1002),
    ("bad UTF-8 text", client_frame(0x1, b"\xce\xba\xe1\xbd"), 1007),
    ("surrogate text", client_frame(0x1, b"\xed\xa0\x80"), 1007),
    ("overlong text", client_frame(0x1, b"\xc0\xaf"), 1007),
    ("bad UTF-8 in a fragment", non_utf8_fragmented(), 1007),
    (
        "truncated UTF-8 at end",
        client_frame(0x1, b"a", fin=False) + client_frame(0x0, b"\xc3"),
        1007,
    ),
    ("close reason not UTF-8", client_frame(0x8, b"\x03\xe8\xff"), 1007),
]
CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
FAILURES += [
    (f"close code {code}", client_frame(0x8, code.to_bytes(2, "big")), 1002) for code in CLOSE_CODES
]


@pytest.mark.parametrize(("why", "wire", "code"), FAILURES, ids=[f[0] for f in FAILURES])
def test_fail_the_connection(why: str, wire: bytes, code: int) -> None:
    for pieces in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        s = server()
        events = feed(s, pieces)
        assert isinstance(events[-1], ProtocolError), why
        assert events[-1].code == code
        assert s.state is ConnectionState.OPEN, "the application has not answered yet"
        assert s.receive_data(client_frame(0x1, b"more")) == [], "reads nothing after failing"
        frame = s.fail(code, why)
        assert frame[:4] == bytes([0x88, 2 + len(why)]) + code.to_bytes(2, "big")
        assert s.state is ConnectionState.CLOSED


def test_a_masked_frame_to_a_client_fails() -> None:
    c = client()
    [event] = c.receive_data(client_frame(0x1, b"x"))
    assert isinstance(event, ProtocolError)
    assert event.code == 1002
    assert c.fail(event.code)[1] & 0x80, "the client's own close frame is masked"


@pytest.mark.parametrize(
    "code",
    [
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        3000,
        3999,
        4000,
        4999,
    ],
)
def test_valid_close_codes(code: int) -> None:
    [event] = server().receive_data(client_frame(0x8, code.to_bytes(2, "big") + b"bye"))
    assert (event.code, event.reason) == (code, "bye")  # type: ignore[attr-defined]


def test_bad_utf8_fails_in_the_call_that_brought_it() -> None:
    """§8.1 fail fast: the byte that cannot be UTF-8 fails, not the end of the message."""
    s = server()
    wire = client_frame(
        0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" + b"x" * 1000
    )
    bad = 8 + 12  # header (2 + 2 length + 4 key), then the \x90 that \xf4 cannot take
    assert s.receive_data(wire[:bad]) == []
    [event] = s.receive_data(wire[bad : bad + 1])
    assert isinstance(event, ProtocolError)
    assert event.code == 1007


def test_bad_utf8_across_frames_fails_at_the_frame() -> None:
    s = server()
    assert s.receive_data(client_frame(0x1, b"\xce\xba\xf4", fin=False)) == []
    [event] = s.receive_data(client_frame(0x0, b"\x90", fin=False))
    assert isinstance(event, ProtocolError)
    assert event.code == 1007


# --- limits ------------------------------------------------------------------------------


def test_max_frame_size_fails_on_the_header() -> None:
    s = server(max_frame_size=100)
    assert s.receive_data(client_frame(0x2, b"x" * 100)) == [BytesMessage(b"x" * 100)]
    [event] = s.receive_data(client_frame(0x2, b"x" * 101)[:8])  # the header alone
    assert isinstance(event, ProtocolError)
    assert event.code == 1009


def test_max_message_size_across_fragments() -> None:
    s = server(max_message_size=10)
    assert s.receive_data(client_frame(0x2, b"x" * 6, fin=False)) == []
    [event] = s.receive_data(client_frame(0x0, b"x" * 5))
    assert isinstance(event, ProtocolError)
    assert event.code == 1009


def test_max_message_size_whole_and_none() -> None:
    [event] = server(max_message_size=10).receive_data(client_frame(0x1, b"x" * 11))
    assert isinstance(event, ProtocolError)
    assert event.code == 1009
    big = b"x" * 200_000
    assert server(max_message_size=None).receive_data(client_frame(0x2, big)) == [BytesMessage(big)]


def test_events_before_an_error_can_still_be_answered() -> None:
    """A message and then a bad frame in one read: the echo goes out before the close."""
    s = server()
    events = s.receive_data(client_frame(0x1, b"hi") + client_frame(0x1, b"x", rsv=2))
    assert events[0] == TextMessage("hi")
    assert isinstance(events[1], ProtocolError)
    assert s.send_text("hi") == server_frame(0x1, b"hi")
    assert s.fail(events[1].code) == server_frame(0x8, b"\x03\xea")


@pytest.mark.parametrize("data", ["é" * 5000, b"\x00\x01" * 40_000, b""])
def test_send_parts_is_the_frame_in_pieces(data: str | bytes, masking: str) -> None:
    # A server's frame as [header, payload], for a gathering write; a client's is masked into
    # a new payload, also not joined. Joined, each is the frame send_text/send_bytes makes.
    expected = server().send_text(data) if isinstance(data, str) else server().send_bytes(data)
    parts = server().send_parts(data)
    assert len(parts) == 2
    assert b"".join(parts) == expected
    [message] = client().receive_data(b"".join(parts))
    assert message.data == data  # type: ignore[union-attr]
    sender = client()
    parts = sender.send_parts(data)
    assert len(parts) == 2
    whole = client()  # the same keys
    frame = whole.send_text(data) if isinstance(data, str) else whole.send_bytes(data)
    assert b"".join(parts) == frame
    [message] = server().receive_data(frame)
    assert message.data == data  # type: ignore[union-attr]
