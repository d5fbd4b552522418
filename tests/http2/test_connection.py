"""The server connection (RFC 9113 §3.4, §5, §6, §8) driven by raw frames."""

from __future__ import annotations

import pytest

from thor.http2.protocol import (
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    H2Config,
    H2Connection,
    LocalProtocolError,
    PingAcknowledged,
    PingReceived,
    RequestReceived,
    SettingsAcknowledged,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    StreamState,
    TrailersReceived,
    WindowUpdated,
)
from thor.http2.protocol.connection import PREFACE
from thor.http2.protocol.frames import (
    ACK,
    END_HEADERS,
    END_STREAM,
    FrameType,
    data_frame,
    goaway_frame,
    ping_frame,
    rst_stream_frame,
    settings_frame,
    window_update_frame,
)
from thor.http2.protocol.stream import StreamInput, transition

from .peer import REQUEST, Peer, raw


def kinds(events: list) -> list[str]:
    return [type(event).__name__ for event in events]


def goaway_code(peer: Peer) -> int:
    (frame,) = [f for f in peer.frames() if f.type == FrameType.GOAWAY]
    return int.from_bytes(frame.payload[4:8], "big")


def rst_code(peer: Peer, stream_id: int) -> int:
    frames = [f for f in peer.frames() if f.type == FrameType.RST_STREAM]
    assert [f.stream_id for f in frames] == [stream_id]
    return int.from_bytes(frames[0].payload, "big")


# Preface and SETTINGS ---------------------------------------------------------------------


def test_the_server_preface_and_settings_exchange() -> None:
    peer = Peer()
    assert [f.type for f in peer.received] == [
        FrameType.SETTINGS,
        FrameType.WINDOW_UPDATE,
        FrameType.SETTINGS,
    ]
    assert peer.received[2].flags == ACK  # the client's SETTINGS acknowledged
    assert kinds(peer.events) == ["SettingsChanged"]
    assert kinds(peer.send(settings_frame(ack=True))) == ["SettingsAcknowledged"]


@pytest.mark.parametrize("chunk", [1, 5, 24, 1000])
def test_the_preface_in_pieces(chunk: int) -> None:
    server = H2Connection()
    data = PREFACE + settings_frame({}) + ping_frame(b"abcdefgh")
    events = []
    for start in range(0, len(data), chunk):
        events += server.receive_data(data[start : start + chunk])
    assert kinds(events) == ["SettingsChanged", "PingReceived"]


def test_a_bad_preface_is_a_connection_error() -> None:
    server = H2Connection()
    (event,) = server.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == ErrorCode.PROTOCOL_ERROR
    assert server.receive_data(PREFACE) == []


def test_the_first_frame_must_be_settings() -> None:
    server = H2Connection()
    (event,) = server.receive_data(PREFACE + ping_frame(b"12345678"))
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == ErrorCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    ("setting", "value", "code"),
    [
        (2, 2, ErrorCode.PROTOCOL_ERROR),
        (4, 2**31, ErrorCode.FLOW_CONTROL_ERROR),
        (5, 16383, ErrorCode.PROTOCOL_ERROR),
        (5, 2**24, ErrorCode.PROTOCOL_ERROR),
    ],
)
def test_bad_setting_values(setting: int, value: int, code: ErrorCode) -> None:
    peer = Peer()
    (event,) = peer.send(settings_frame({setting: value}))
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == code


def test_unknown_settings_and_frame_types_are_ignored() -> None:
    peer = Peer()
    assert kinds(peer.send(settings_frame({0x99: 1}) + raw(0xEE, 0, 0, b"x"))) == [
        "SettingsChanged"
    ]


# Requests, responses, trailers ------------------------------------------------------------


def test_a_request_and_a_response() -> None:
    peer = Peer()
    events = peer.request(1)
    assert events == [RequestReceived(1, REQUEST), StreamEnded(1)]
    assert peer.server.streams[1].state is StreamState.HALF_CLOSED_REMOTE
    peer.server.send_headers(1, [(b":status", b"200")])
    assert peer.server.send_data(1, b"hello", end_stream=True) == 5
    frames = peer.frames()
    assert [f.type for f in frames] == [FrameType.HEADERS, FrameType.DATA]
    assert peer.decoder.decode(frames[0].payload) == [(b":status", b"200")]
    assert frames[1].payload == b"hello"
    assert frames[1].flags == END_STREAM
    assert 1 not in peer.server.streams


def test_a_request_body_and_trailers() -> None:
    peer = Peer()
    fields = [(b":method", b"POST"), *REQUEST[1:], (b"content-length", b"3"), (b"te", b"trailers")]
    events = peer.request(1, fields, end_stream=False)
    events += peer.send(data_frame(1, b"abc"))
    events += peer.send(peer.headers(1, [(b"x-sum", b"1")], END_HEADERS | END_STREAM))
    assert events[1:] == [
        DataReceived(1, b"abc", 3),
        TrailersReceived(1, [(b"x-sum", b"1")]),
        StreamEnded(1),
    ]


def test_response_trailers_and_1xx() -> None:
    peer = Peer()
    peer.request(1)
    peer.server.send_headers(1, [(b":status", b"103"), (b"link", b"</a>")])
    peer.server.send_headers(1, [(b":status", b"200")])
    peer.server.send_data(1, b"x")
    peer.server.send_trailers(1, [(b"grpc-status", b"0")])
    frames = peer.frames()
    assert [f.type for f in frames] == [1, 1, 0, 1]
    assert frames[3].flags & END_STREAM
    assert peer.decoder.decode(frames[0].payload)[0] == (b":status", b"103")
    assert peer.decoder.decode(frames[3].payload) == [(b"grpc-status", b"0")]


def test_local_mistakes_are_local_protocol_errors() -> None:
    peer = Peer()
    peer.request(1)
    server = peer.server
    with pytest.raises(LocalProtocolError):
        server.send_data(1, b"x")  # before the head
    with pytest.raises(LocalProtocolError):
        server.send_headers(1, [(b"content-type", b"x")])  # no :status
    with pytest.raises(LocalProtocolError):
        server.send_headers(1, [(b":status", b"100")], end_stream=True)
    with pytest.raises(LocalProtocolError):
        server.send_trailers(1, [(b"x", b"y")])  # before the head
    server.send_headers(1, [(b":status", b"200")])
    with pytest.raises(LocalProtocolError):
        server.send_headers(1, [(b":status", b"200")])
    with pytest.raises(LocalProtocolError):
        server.send_trailers(1, [(b":status", b"200")])
    server.end_stream(1)
    with pytest.raises(LocalProtocolError):
        server.send_data(3, b"x")
    with pytest.raises(LocalProtocolError):
        server.reset_stream(1)


def test_header_blocks_across_continuation_frames() -> None:
    peer = Peer()
    block = peer.block([*REQUEST, (b"x-big", b"v" * 100)])
    frames = (
        raw(1, END_STREAM, 1, block[:3])
        + raw(9, 0, 1, block[3:10])
        + raw(9, END_HEADERS, 1, block[10:])
    )
    events = []
    for byte in range(len(frames)):
        events += peer.send(frames[byte : byte + 1])
    assert kinds(events) == ["RequestReceived", "StreamEnded"]


@pytest.mark.parametrize(
    "interruption",
    [ping_frame(b"12345678"), raw(9, END_HEADERS, 3, b""), raw(1, END_HEADERS, 3, b"\x82")],
)
def test_nothing_may_come_between_headers_and_continuation(interruption: bytes) -> None:
    peer = Peer()
    block = peer.block(REQUEST)
    (event,) = peer.send(raw(1, END_STREAM, 1, block[:2]) + interruption)
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == ErrorCode.PROTOCOL_ERROR


def test_continuation_without_headers() -> None:
    peer = Peer()
    (event,) = peer.send(raw(9, END_HEADERS, 1, b"\x82"))
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == ErrorCode.PROTOCOL_ERROR


# Stream states ----------------------------------------------------------------------------


def test_the_transition_table() -> None:
    S, In = StreamState, StreamInput
    assert transition(1, S.IDLE, In.RECV_HEADERS) is S.OPEN
    assert transition(1, S.OPEN, In.SEND_END_STREAM) is S.HALF_CLOSED_LOCAL
    assert transition(1, S.HALF_CLOSED_LOCAL, In.RECV_END_STREAM) is S.CLOSED
    with pytest.raises(LocalProtocolError):
        transition(1, S.HALF_CLOSED_LOCAL, In.SEND_HEADERS)
    with pytest.raises(Exception, match=r"STREAM|state") as caught:
        transition(1, S.HALF_CLOSED_REMOTE, In.RECV_END_STREAM)
    assert caught.value.code == ErrorCode.STREAM_CLOSED  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (data_frame(1, b"x"), ErrorCode.PROTOCOL_ERROR),  # DATA on idle (§5.1)
        (rst_stream_frame(1, 0), ErrorCode.PROTOCOL_ERROR),
        (window_update_frame(1, 1), ErrorCode.PROTOCOL_ERROR),
        (window_update_frame(2, 1), ErrorCode.PROTOCOL_ERROR),  # the server's own idle stream
        (raw(1, END_HEADERS, 2, b"\x82"), ErrorCode.PROTOCOL_ERROR),  # even stream id
        (raw(5, END_HEADERS, 1, b"\x00\x00\x00\x02"), ErrorCode.PROTOCOL_ERROR),  # PUSH_PROMISE
        (window_update_frame(0, 0), ErrorCode.PROTOCOL_ERROR),
        (window_update_frame(0, 2**31 - 1), ErrorCode.FLOW_CONTROL_ERROR),  # §6.9.1
    ],
)
def test_connection_errors(frame: bytes, code: ErrorCode) -> None:
    peer = Peer()
    events = peer.send(frame)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == code
    assert goaway_code(peer) == code
    assert peer.server.terminated


def test_a_stream_id_lower_than_one_seen_is_a_connection_error() -> None:
    peer = Peer()
    peer.request(5)
    events = peer.request(3)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == ErrorCode.PROTOCOL_ERROR
    assert events[-1].last_stream_id == 5


def test_headers_on_a_stream_the_peer_reset_is_a_stream_closed_connection_error() -> None:
    peer = Peer()
    peer.request(1, end_stream=False)
    peer.send(rst_stream_frame(1, ErrorCode.CANCEL))
    events = peer.request(1)
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == ErrorCode.STREAM_CLOSED


def test_headers_on_a_stream_ended_by_the_peer_is_stream_closed() -> None:
    peer = Peer()
    peer.request(1)
    (event,) = peer.send(peer.headers(1, [(b"x", b"y")], END_HEADERS | END_STREAM))
    assert event == StreamReset(1, ErrorCode.STREAM_CLOSED, False)
    assert rst_code(peer, 1) == ErrorCode.STREAM_CLOSED


def test_data_after_end_stream_is_stream_closed_and_the_connection_window_returns() -> None:
    peer = Peer()
    peer.request(1)
    window = peer.server.inbound_window
    (event,) = peer.send(data_frame(1, b"x" * 100))
    assert event == StreamReset(1, ErrorCode.STREAM_CLOSED, False)
    assert peer.server.inbound_window + peer.server.unacked == window


def test_frames_on_a_stream_reset_here_are_ignored() -> None:
    peer = Peer()
    peer.request(1, end_stream=False)
    peer.server.reset_stream(1)
    assert rst_code(peer, 1) == ErrorCode.CANCEL
    assert peer.send(data_frame(1, b"late") + peer.headers(1, [(b"x", b"y")], END_HEADERS)) == []


def test_the_peer_resets_a_stream() -> None:
    peer = Peer()
    peer.request(1, end_stream=False)
    assert peer.send(rst_stream_frame(1, ErrorCode.CANCEL)) == [StreamReset(1, ErrorCode.CANCEL)]
    assert peer.send(rst_stream_frame(1, ErrorCode.CANCEL)) == []  # closed: ignored
    with pytest.raises(LocalProtocolError):
        peer.server.send_headers(1, [(b":status", b"200")])


def test_priority_is_ignored_but_self_dependency_is_a_stream_error() -> None:
    peer = Peer()
    assert peer.send(raw(2, 0, 3, b"\x00\x00\x00\x01\x10")) == []
    (event,) = peer.send(raw(2, 0, 3, b"\x00\x00\x00\x03\x10"))
    assert event == StreamReset(3, ErrorCode.PROTOCOL_ERROR, False)
    block = peer.block(REQUEST)
    (event,) = peer.send(raw(1, END_HEADERS | 0x20, 5, b"\x00\x00\x00\x05\x10" + block))
    assert event == StreamReset(5, ErrorCode.PROTOCOL_ERROR, False)


# Flow control -----------------------------------------------------------------------------


def test_send_data_respects_the_stream_window_and_resumes_on_window_update() -> None:
    peer = Peer()
    peer.request(1)
    server = peer.server
    server.send_headers(1, [(b":status", b"200")])
    body = b"x" * 100_000
    sent = server.send_data(1, body, end_stream=True)
    assert sent == 65535
    assert server.local_flow_control_window(1) == 0
    frames = [f for f in peer.frames() if f.type == FrameType.DATA]
    assert sum(len(f.payload) for f in frames) == 65535
    assert not frames[-1].flags & END_STREAM
    assert max(len(f.payload) for f in frames) == 16384
    assert server.send_data(1, body[sent:], end_stream=True) == 0
    events = peer.send(window_update_frame(1, 50_000) + window_update_frame(0, 50_000))
    assert events == [WindowUpdated(1, 50_000), WindowUpdated(0, 50_000)]
    assert server.send_data(1, body[sent:], end_stream=True) == 100_000 - 65535
    assert 1 not in server.streams


def test_the_connection_window_limits_all_streams() -> None:
    peer = Peer(settings={4: 1 << 20})
    server = peer.server
    total = 0
    for sid in (1, 3):
        peer.request(sid)
        server.send_headers(sid, [(b":status", b"200")])
        total += server.send_data(sid, b"x" * 40_000)
    assert total == 65535


def test_initial_window_size_changes_move_open_streams() -> None:
    peer = Peer()
    peer.request(1)
    server = peer.server
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"x" * 1000)
    assert kinds(peer.send(settings_frame({4: 500}))) == ["SettingsChanged"]
    assert server.streams[1].outbound_window == 500 - 1000
    assert server.send_data(1, b"y") == 0
    (event,) = peer.send(settings_frame({4: 2**31 - 1}))
    assert event == SettingsChanged({4: 2**31 - 1})
    assert server.streams[1].outbound_window == 2**31 - 1 - 1000
    events = peer.send(window_update_frame(1, 1001))
    assert events == [StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False)]  # over 2^31-1


def test_an_initial_window_raise_past_the_limit_is_a_connection_error() -> None:
    peer = Peer()
    peer.request(1)
    peer.send(window_update_frame(1, 2**31 - 1 - 65535))
    (event,) = peer.send(settings_frame({4: 65536}))
    assert isinstance(event, ConnectionTerminated)
    assert event.error_code == ErrorCode.FLOW_CONTROL_ERROR


def test_a_slow_reader_keeps_its_window_closed() -> None:
    config = H2Config(initial_window_size=1000, connection_window_size=1 << 20)
    peer = Peer(config)
    fields = [(b":method", b"POST"), *REQUEST[1:]]
    peer.request(1, fields, end_stream=False)
    assert peer.send(data_frame(1, b"x" * 1000)) == [DataReceived(1, b"x" * 1000, 1000)]
    peer.frames()
    (event,) = peer.send(data_frame(1, b"y"))  # beyond the window: nothing was acknowledged
    assert event == StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False)


def test_acknowledged_data_reopens_the_windows_in_batches() -> None:
    config = H2Config(initial_window_size=1000, connection_window_size=4000)
    peer = Peer(config)
    fields = [(b":method", b"POST"), *REQUEST[1:]]
    peer.request(1, fields, end_stream=False)
    peer.send(data_frame(1, b"x" * 400))
    peer.server.acknowledge_received_data(400, 1)
    peer.server.acknowledge_received_data(0, 1)
    assert peer.frames() == []  # under half a window: batched
    peer.send(data_frame(1, b"x" * 400))
    peer.server.acknowledge_received_data(400, 1)
    (update,) = peer.frames()
    assert (update.stream_id, int.from_bytes(update.payload, "big")) == (1, 800)
    peer.send(data_frame(1, b"x" * 1000))
    peer.server.acknowledge_received_data(1000, 1)
    (update,) = peer.frames()
    assert (update.stream_id, int.from_bytes(update.payload, "big")) == (1, 1000)
    peer.send(data_frame(1, b"z" * 200))
    peer.server.acknowledge_received_data(200, 1)
    (update,) = peer.frames()  # the connection's: 2,000 consumed of 4,000
    assert (update.stream_id, int.from_bytes(update.payload, "big")) == (0, 2000)


def test_data_beyond_the_connection_window_is_a_connection_error() -> None:
    config = H2Config(initial_window_size=100_000, connection_window_size=65535)
    peer = Peer(config, settings={})
    peer.request(1, [(b":method", b"POST"), *REQUEST[1:]], end_stream=False)
    events = []
    for _ in range(5):
        events += peer.send(data_frame(1, b"x" * 16000))
    assert isinstance(events[-1], ConnectionTerminated)
    assert events[-1].error_code == ErrorCode.FLOW_CONTROL_ERROR


# PING, GOAWAY -----------------------------------------------------------------------------


def test_ping_is_acknowledged() -> None:
    peer = Peer()
    assert peer.send(ping_frame(b"abcdefgh")) == [PingReceived(b"abcdefgh")]
    (ack,) = peer.frames()
    assert ack.type == FrameType.PING
    assert ack.flags == ACK
    assert ack.payload == b"abcdefgh"
    assert peer.send(ping_frame(b"12345678", ack=True)) == [PingAcknowledged(b"12345678")]


def test_goaway_from_the_peer() -> None:
    peer = Peer()
    (event,) = peer.send(goaway_frame(0, ErrorCode.NO_ERROR, b"bye"))
    assert event == ConnectionTerminated(ErrorCode.NO_ERROR, 0, b"bye")


def test_close_connection_ignores_new_streams() -> None:
    peer = Peer()
    peer.request(1, end_stream=False)
    peer.server.close_connection()
    (goaway,) = peer.frames()
    assert int.from_bytes(goaway.payload[:4], "big") == 1
    assert peer.request(3) == []  # above the last stream id: ignored (§6.8)
    assert not peer.server.is_drained
    assert kinds(peer.send(data_frame(1, b"x", end_stream=True))) == ["DataReceived", "StreamEnded"]
    peer.server.send_headers(1, [(b":status", b"204")], end_stream=True)
    assert peer.server.is_drained


def test_a_graceful_drain_times_the_final_goaway_with_a_ping() -> None:
    peer = Peer()
    peer.request(1)
    peer.server.start_drain()
    goaway, ping = peer.frames()
    assert int.from_bytes(goaway.payload[:4], "big") == 2**31 - 1
    assert kinds(peer.request(3)) == ["RequestReceived", "StreamEnded"]  # in flight: served
    peer.send(ping_frame(ping.payload, ack=True))
    (final,) = peer.frames()
    assert int.from_bytes(final.payload[:4], "big") == 3
    assert peer.request(5) == []


def test_close_connection_with_an_error_ends_it() -> None:
    peer = Peer()
    peer.server.close_connection(ErrorCode.INTERNAL_ERROR, b"oops")
    assert goaway_code(peer) == ErrorCode.INTERNAL_ERROR
    assert peer.request(1) == []


def test_settings_ack_is_reported_once() -> None:
    peer = Peer()
    assert peer.send(settings_frame(ack=True)) == [SettingsAcknowledged()]
    assert peer.send(settings_frame(ack=True)) == []
