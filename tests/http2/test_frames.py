"""The frame layer (RFC 9113 §4, §6): each rule of one frame alone, fed whole, byte by byte
and split at every offset."""

from __future__ import annotations

import pytest

from thor.http2.protocol.errors import ErrorCode, FrameSizeError, H2ConnectionError, H2StreamError
from thor.http2.protocol.frames import (
    ACK,
    END_HEADERS,
    END_STREAM,
    PADDED,
    PRIORITY_FLAG,
    Frame,
    FrameReader,
    FrameType,
    data_frame,
    goaway_frame,
    headers_frames,
    ping_frame,
    rst_stream_frame,
    settings_frame,
    window_update_frame,
)


def raw(type_: int, flags: int, stream_id: int, payload: bytes, length: int | None = None) -> bytes:
    length = len(payload) if length is None else length
    return (
        length.to_bytes(3, "big") + bytes((type_, flags)) + stream_id.to_bytes(4, "big") + payload
    )


def read_all(
    data: bytes, chunks: list[bytes] | None = None, max_frame_size: int = 16384
) -> list[Frame]:
    reader = FrameReader(max_frame_size)
    frames = []
    for chunk in chunks if chunks is not None else [data]:
        reader.feed(chunk)
        while (frame := reader.next_frame()) is not None:
            frames.append(frame)
    assert reader.buffered == 0
    return frames


def summary(frames: list[Frame]) -> list[tuple[int, int, int, bytes]]:
    return [(f.type, f.flags, f.stream_id, f.payload) for f in frames]


WIRE = b"".join(
    [
        settings_frame({1: 4096, 4: 65535}),
        headers_frames(1, b"\x82\x86\x84", False, 16384),
        data_frame(1, b"hello"),
        raw(FrameType.DATA, PADDED | END_STREAM, 1, b"\x03abc\x00\x00\x00"),
        ping_frame(b"12345678"),
        window_update_frame(0, 100),
        rst_stream_frame(3, ErrorCode.CANCEL),
        goaway_frame(1, 0, b"bye"),
        raw(0xFA, 0, 0, b"unknown types pass through"),
    ]
)


def test_whole_byte_by_byte_and_split_agree() -> None:
    whole = summary(read_all(WIRE))
    assert [t for t, *_ in whole] == [4, 1, 0, 0, 6, 8, 3, 7, 0xFA]
    assert whole[3] == (0, PADDED | END_STREAM, 1, b"abc")
    assert summary(read_all(WIRE, [WIRE[i : i + 1] for i in range(len(WIRE))])) == whole
    for cut in range(len(WIRE)):
        assert summary(read_all(WIRE, [WIRE[:cut], WIRE[cut:]])) == whole


def test_padded_data_keeps_its_whole_length_for_flow_control() -> None:
    (frame,) = read_all(raw(0, PADDED, 1, b"\x03abc\x00\x00\x00"))
    assert frame.payload == b"abc"
    assert frame.flow_length == 7


def test_headers_with_padding_and_priority() -> None:
    payload = b"\x02" + (5).to_bytes(4, "big") + b"\x10" + b"\x82\x84" + b"\x00\x00"
    (frame,) = read_all(raw(1, PADDED | PRIORITY_FLAG | END_HEADERS, 1, payload))
    assert frame.payload == b"\x82\x84"
    assert frame.dependency == 5


def test_large_header_blocks_are_split_into_continuations() -> None:
    block = bytes(range(256)) * 100
    frames = read_all(headers_frames(1, block, True, 16384))
    assert [f.type for f in frames] == [FrameType.HEADERS, FrameType.CONTINUATION]
    assert frames[0].flags == END_STREAM
    assert frames[1].flags == END_HEADERS
    assert frames[0].payload + frames[1].payload == block


def test_frames_after_a_bad_one_are_not_read_but_those_before_are() -> None:
    reader = FrameReader()
    reader.feed(ping_frame(b"12345678") + raw(6, 0, 0, b"short") + ping_frame(b"abcdefgh"))
    assert reader.next_frame() is not None
    with pytest.raises(FrameSizeError):
        reader.next_frame()


@pytest.mark.parametrize(
    ("frame", "error", "code"),
    [
        (raw(0, 0, 0, b"x"), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),  # DATA stream 0
        (raw(1, 4, 0, b"\x82"), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),  # HEADERS stream 0
        (raw(2, 0, 0, b"\x00" * 5), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),
        (raw(2, 0, 1, b"\x00" * 4), H2StreamError, ErrorCode.FRAME_SIZE_ERROR),  # §6.3
        (raw(3, 0, 0, b"\x00" * 4), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),
        (raw(3, 0, 1, b"\x00" * 5), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(4, 0, 1, b""), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),  # SETTINGS stream 1
        (raw(4, 0, 0, b"\x00" * 5), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(4, ACK, 0, b"\x00" * 6), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(6, 0, 0, b"\x00" * 7), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(6, 0, 1, b"\x00" * 8), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),
        (raw(7, 0, 0, b"\x00" * 7), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(7, 0, 1, b"\x00" * 8), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),
        (raw(8, 0, 0, b"\x00" * 3), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(9, 0, 0, b""), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),  # CONTINUATION 0
        (raw(0, PADDED, 1, b"\x03ab"), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),  # §6.1
        (raw(0, PADDED, 1, b""), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(1, PADDED | 4, 1, b"\x05\x82"), H2ConnectionError, ErrorCode.PROTOCOL_ERROR),
        (raw(1, PRIORITY_FLAG | 4, 1, b"\x00\x00"), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),
        (raw(0, 0, 1, b"", length=16385), FrameSizeError, ErrorCode.FRAME_SIZE_ERROR),  # §4.2
    ],
)
def test_each_rule_of_one_frame(frame: bytes, error: type[Exception], code: ErrorCode) -> None:
    with pytest.raises(error) as caught:
        read_all(frame)
    assert caught.value.code == code  # type: ignore[attr-defined]


def test_the_size_limit_follows_the_setting() -> None:
    big = data_frame(1, b"x" * 20000)
    assert read_all(big, max_frame_size=32768)[0].payload == b"x" * 20000


def test_the_reserved_bit_is_ignored() -> None:
    (frame,) = read_all(raw(0, 0, 0x80000001, b"x"))
    assert frame.stream_id == 1


def test_writers() -> None:
    assert settings_frame(ack=True) == raw(4, ACK, 0, b"")
    assert settings_frame({4: 1}) == raw(4, 0, 0, b"\x00\x04\x00\x00\x00\x01")
    assert window_update_frame(3, 7) == raw(8, 0, 3, b"\x00\x00\x00\x07")
    assert goaway_frame(5, 2) == raw(7, 0, 0, b"\x00\x00\x00\x05\x00\x00\x00\x02")
    assert "stream=3" in repr(read_all(window_update_frame(3, 7))[0])
