"""Each defence is a setting with a default, and each attack ends in the RFC's error with
bounded work (CVE-2019-9512…9518, CVE-2023-44487, the 2024 CONTINUATION flood)."""

from __future__ import annotations

import pytest

from thor.http2.protocol import ConnectionTerminated, ErrorCode, H2Config, StreamReset
from thor.http2.protocol.frames import (
    END_HEADERS,
    END_STREAM,
    FrameType,
    data_frame,
    ping_frame,
    rst_stream_frame,
    settings_frame,
    window_update_frame,
)
from thor.http2.protocol.hpack import encode_integer

from .peer import REQUEST, Peer, raw

CALM = ErrorCode.ENHANCE_YOUR_CALM


def calmed(events: list) -> bool:
    return bool(events) and events[-1] == ConnectionTerminated(
        CALM, events[-1].last_stream_id, b"", False, events[-1].detail
    )


def flood(peer: Peer, frame: bytes, count: int) -> list:
    events: list = []
    for _ in range(count):
        events += peer.send(frame)
        peer.frames()  # the client reads: only the counters stop it
        if peer.server.terminated:
            break
    return events


def test_defaults() -> None:
    config = H2Config()
    assert config.max_concurrent_streams == 100
    assert config.max_resets_per_window == 100
    assert config.defence_window_frames == 1000
    assert config.max_header_list_size == 65536


def test_rapid_reset_ends_in_enhance_your_calm() -> None:
    peer = Peer()
    events: list = []
    for sid in range(1, 2 * 200, 2):
        events += peer.request(sid, end_stream=False)
        events += peer.send(rst_stream_frame(sid, ErrorCode.CANCEL))
        if peer.server.terminated:
            break
    assert calmed(events)
    resets = [e for e in events if isinstance(e, StreamReset)]
    assert len(resets) == 100  # the 101st in the window tripped it


def test_resets_spread_over_windows_are_fine() -> None:
    config = H2Config(max_resets_per_window=3, defence_window_frames=20)
    peer = Peer(config)
    for sid in range(1, 200, 2):
        peer.request(sid, end_stream=False)
        peer.send(rst_stream_frame(sid, ErrorCode.CANCEL))
        peer.send(ping_frame(b"12345678") * 8)  # ordinary traffic between resets
        peer.frames()
    assert not peer.server.terminated


@pytest.mark.parametrize(
    ("name", "frame", "limit"),
    [
        ("settings", settings_frame({}), "max_settings_per_window"),
        ("ping", ping_frame(b"12345678"), "max_pings_per_window"),
        ("priority", raw(2, 0, 7, b"\x00\x00\x00\x01\x10"), "max_priority_per_window"),
        ("window update", window_update_frame(0, 1), "max_window_updates_per_window"),
    ],
)
def test_control_frame_floods(name: str, frame: bytes, limit: str) -> None:
    peer = Peer(H2Config(**{limit: 10}))
    events = flood(peer, frame, 50)
    assert calmed(events), name
    assert peer.server.terminated


def test_empty_data_frame_flood() -> None:
    peer = Peer(H2Config(max_empty_frames_per_window=10))
    peer.request(1, [(b":method", b"POST"), *REQUEST[1:]], end_stream=False)
    assert calmed(flood(peer, data_frame(1, b""), 50))


def test_unread_control_frames_are_bounded() -> None:
    # The peer never reads: PING ACKs would pile up without the bound (CVE-2019-9512).
    peer = Peer(H2Config(max_pings_per_window=10_000, max_outbound_control_bytes=1700))
    events = peer.send(ping_frame(b"12345678") * 200)
    assert calmed(events)
    assert len(peer.server.data_to_send()) < 2000 + 100


def test_continuation_flood_by_count() -> None:
    peer = Peer(H2Config(max_continuation_frames=16))
    events = peer.send(raw(1, END_STREAM, 1, peer.block(REQUEST)))
    events += flood(peer, raw(9, 0, 1, b"\x82"), 100)
    assert calmed(events)


def test_continuation_flood_by_size() -> None:
    peer = Peer(H2Config(max_header_block_size=40_000))
    events = peer.send(raw(1, END_STREAM, 1, b"\x40\x01a\x7f\xff\x07"))
    events += flood(peer, raw(9, 0, 1, b"x" * 16384), 10)
    assert calmed(events)


def test_hpack_bomb_is_answered_431_and_the_connection_carries_on() -> None:
    peer = Peer(H2Config(max_header_list_size=16_384))
    entry = b"\x40\x01a" + encode_integer(4000, 7) + b"b" * 4000  # indexed as 62
    block = peer.block(REQUEST) + entry + b"\xbe" * 5000  # 20 MB decoded if unbounded
    events = peer.send(raw(1, END_HEADERS, 1, block))
    assert events == [StreamReset(1, ErrorCode.NO_ERROR, False, 431)]
    headers, rst = peer.frames()
    assert peer.decoder.decode(headers.payload) == [(b":status", b"431")]
    assert headers.flags & END_STREAM
    assert rst.type == FrameType.RST_STREAM
    # The decoder kept the table in step: the next request decodes.
    peer.encoder.encode([(b"a", b"b" * 4000)])  # mirror the entry the raw block added
    assert [type(e).__name__ for e in peer.request(3)] == ["RequestReceived", "StreamEnded"]


def test_too_many_concurrent_streams_are_refused() -> None:
    peer = Peer(H2Config(max_concurrent_streams=2))
    peer.request(1)
    peer.request(3)
    assert peer.request(5) == [StreamReset(5, ErrorCode.REFUSED_STREAM, False)]
    peer.server.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert [type(e).__name__ for e in peer.request(7)] == ["RequestReceived", "StreamEnded"]


def test_unread_resets_are_bounded_too() -> None:
    peer = Peer(H2Config(max_outbound_control_bytes=30))
    bad = [*REQUEST, (b"connection", b"close")]
    events = []
    for sid in (1, 3, 5):
        events += peer.request(sid, bad)
    assert [type(e).__name__ for e in events] == [
        "StreamReset",
        "StreamReset",
        "ConnectionTerminated",
    ]
    assert events[-1].error_code == CALM


def test_refused_streams_count_as_resets() -> None:
    peer = Peer(H2Config(max_concurrent_streams=1, max_resets_per_window=20))
    peer.request(1, end_stream=False)  # held open: every later stream is refused
    events: list = []
    for sid in range(3, 200, 2):
        events += peer.request(sid)
        peer.frames()
        if peer.server.terminated:
            break
    refused = [e for e in events if isinstance(e, StreamReset)]
    assert len(refused) == 20
    assert calmed(events)
