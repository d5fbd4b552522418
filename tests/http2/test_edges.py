"""The less travelled paths of the core, each with the RFC's answer."""

from __future__ import annotations

import pytest

from thor.http2.protocol import (
    ConnectionTerminated,
    ErrorCode,
    H2Config,
    LocalProtocolError,
    StreamReset,
    huffman,
)
from thor.http2.protocol.errors import HpackError
from thor.http2.protocol.frames import (
    END_HEADERS,
    END_STREAM,
    data_frame,
    settings_frame,
    window_update_frame,
)
from thor.http2.protocol.hpack import Decoder, Encoder, encode_integer

from .peer import REQUEST, Peer, raw

POST = [(b":method", b"POST"), *REQUEST[1:]]


def test_data_on_a_stream_closed_normally_is_stream_closed() -> None:
    peer = Peer()
    peer.request(1)
    peer.server.send_headers(1, [(b":status", b"204")], end_stream=True)
    assert peer.send(data_frame(1, b"x")) == [StreamReset(1, ErrorCode.STREAM_CLOSED, False)]


def test_forgotten_closed_streams_still_are_not_idle() -> None:
    peer = Peer(H2Config(closed_streams_remembered=2))
    for sid in (1, 3, 5):
        peer.request(sid, end_stream=False)
        peer.server.reset_stream(sid)
    assert list(peer.server.closed_streams) == [3, 5]
    assert peer.send(data_frame(1, b"x")) == [StreamReset(1, ErrorCode.STREAM_CLOSED, False)]
    assert peer.send(data_frame(5, b"x")) == []  # remembered as reset here: ignored


def test_empty_headers_and_continuation_frames_are_counted() -> None:
    peer = Peer(H2Config(max_empty_frames_per_window=2))
    events = peer.send(raw(1, END_HEADERS, 1, b""))
    assert events == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)]  # no :method
    events = peer.send(raw(1, 0, 3, peer.block(REQUEST)) + raw(9, 0, 3, b"") + raw(9, 0, 3, b""))
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == ErrorCode.ENHANCE_YOUR_CALM


def test_window_updates_on_closed_streams_are_ignored_and_zero_is_a_stream_error() -> None:
    peer = Peer()
    peer.request(1)
    peer.server.send_headers(1, [(b":status", b"204")], end_stream=True)
    assert peer.send(window_update_frame(1, 10)) == []
    peer.request(3)
    assert peer.send(window_update_frame(3, 0)) == [StreamReset(3, ErrorCode.PROTOCOL_ERROR, False)]


def test_trailers_over_the_limit_reset_the_stream() -> None:
    peer = Peer(H2Config(max_header_list_size=200))
    peer.request(1, POST, end_stream=False)
    events = peer.send(peer.headers(1, [(b"x-big", b"v" * 300)], END_HEADERS | END_STREAM))
    assert events == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)]


def test_a_431_without_a_body_needs_no_reset() -> None:
    peer = Peer(H2Config(max_header_list_size=200))
    events = peer.request(1, [*REQUEST, (b"x-big", b"v" * 300)])
    assert events == [StreamReset(1, ErrorCode.NO_ERROR, False, 431)]
    assert [f.type for f in peer.frames()] == [1]


def test_a_response_half_closes_locally_and_then_cannot_send() -> None:
    peer = Peer()
    peer.request(1, POST, end_stream=False)
    server = peer.server
    assert server.open_streams == 1
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert repr(server.streams[1]) == "Stream(1, half-closed (local))"
    with pytest.raises(LocalProtocolError):
        server.send_data(1, b"x")
    assert [type(e).__name__ for e in peer.send(data_frame(1, b"x", end_stream=True))] == [
        "DataReceived",
        "StreamEnded",
    ]
    assert server.open_streams == 0


def test_send_data_of_nothing_sends_nothing() -> None:
    peer = Peer()
    peer.request(1)
    peer.server.send_headers(1, [(b":status", b"200")])
    peer.frames()
    assert peer.server.send_data(1, b"") == 0
    assert peer.frames() == []


def test_long_values_are_checked_every_time() -> None:
    peer = Peer()
    fields = [*REQUEST[:2], (b":path", b"/" + b"p" * 600), REQUEST[3], (b"x-long", b"v" * 600)]
    for sid in (1, 3):
        assert type(peer.request(sid, fields)[0]).__name__ == "RequestReceived"


def test_enable_connect_protocol_must_be_0_or_1() -> None:
    peer = Peer()
    (event,) = peer.send(settings_frame({8: 2}))
    assert isinstance(event, ConnectionTerminated)


def test_huffman_eos_in_either_half_of_a_byte() -> None:
    for coded in (b"\x3f\xff\xff\xff\xe0", b"\xff\xff\xff\xfc"):
        with pytest.raises(HpackError, match="EOS"):
            huffman.decode(coded)


def test_multi_byte_indices() -> None:
    with pytest.raises(HpackError, match="past the table"):
        Decoder().decode(encode_integer(200, 7, 0x80))
    encoder, decoder = Encoder(), Decoder()
    fields = [(b"x-%d" % n, b"v") for n in range(100)]
    decoder.decode(encoder.encode(fields))
    block = encoder.encode(fields[:1])  # now entry 100 of the table: index 161
    assert block == encode_integer(161, 7, 0x80)
    assert decoder.decode(block) == fields[:1]


def test_encoder_table_size_changes() -> None:
    encoder = Encoder()
    encoder.set_max_table_size(4096)  # no change: nothing to signal
    assert encoder.encode([(b"x", b"1")])[:1] == b"\x40"
    encoder.encode([(b"x", b"2")])  # a newer entry for the name "x"
    encoder.set_max_table_size(40)  # evicts both; "x" lookups go
    block = encoder.encode([(b"x", b"3")])
    decoder = Decoder()
    decoder.decode(b"\x40\x01x\x011\x40\x01x\x012")
    assert decoder.decode(block) == [(b"x", b"3")]
