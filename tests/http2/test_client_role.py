"""Thor's core in the client role against the ``h2`` package's server, in memory."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from thor.http2.protocol import (
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    H2Connection,
    InformationalReceived,
    LocalProtocolError,
    ResponseReceived,
    SettingCode,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)

REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"x")]


class Pair:
    def __init__(self) -> None:
        self.client = H2Connection(client_side=True)
        self.client.initiate_connection()
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.server.initiate_connection()
        self.client_events: list = []
        self.server_events: list = []
        self.pump()

    def pump(self) -> None:
        for _ in range(100):
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return
            self.server_events += self.server.receive_data(to_server)
            self.client_events += self.client.receive_data(to_client)
        raise AssertionError("no quiet after 100 exchanges")


def test_a_request_with_a_body_and_the_response_with_1xx_and_trailers() -> None:
    pair = Pair()
    sid = pair.client.get_next_available_stream_id()
    assert sid == 1
    pair.client.send_headers(sid, [(b":method", b"POST"), *REQUEST[1:]])
    assert pair.client.send_data(sid, b"payload", end_stream=True) == 7
    pair.pump()
    (request,) = [e for e in pair.server_events if isinstance(e, h2.events.RequestReceived)]
    assert request.headers[0] == (b":method", b"POST")
    assert [e.data for e in pair.server_events if isinstance(e, h2.events.DataReceived)] == [
        b"payload"
    ]
    pair.server.send_headers(sid, [(b":status", b"100")])
    pair.server.send_headers(sid, [(b":status", b"200"), (b"content-length", b"2")])
    pair.server.send_data(sid, b"ok")
    pair.server.send_headers(sid, [(b"x-t", b"1")], end_stream=True)
    pair.pump()
    kinds = [type(e) for e in pair.client_events]
    assert kinds[-5:] == [
        InformationalReceived,
        ResponseReceived,
        DataReceived,
        TrailersReceived,
        StreamEnded,
    ]
    assert pair.client.get_next_available_stream_id() == 3


def test_the_server_resets_a_request() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.reset_stream(1, ErrorCode.REFUSED_STREAM)
    pair.pump()
    assert pair.client_events[-1] == StreamReset(1, ErrorCode.REFUSED_STREAM)


def test_a_client_may_only_open_the_next_stream() -> None:
    pair = Pair()
    with pytest.raises(LocalProtocolError):
        pair.client.send_headers(3, REQUEST)


def test_a_1xx_with_end_stream_is_a_stream_error() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    block = pair.server.encoder.encode([(b":status", b"103")])
    frame = len(block).to_bytes(3, "big") + b"\x01\x05" + (1).to_bytes(4, "big") + block
    assert pair.client.receive_data(frame) == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)]


def test_request_trailers_reach_the_server() -> None:
    pair = Pair()
    pair.client.send_headers(1, [(b":method", b"POST"), *REQUEST[1:], (b"te", b"trailers")])
    pair.client.send_data(1, b"x")
    pair.client.send_trailers(1, [(b"grpc-timeout", b"1S")])
    pair.pump()
    (trailers,) = [e for e in pair.server_events if isinstance(e, h2.events.TrailersReceived)]
    assert trailers.headers == [(b"grpc-timeout", b"1S")]
    assert any(isinstance(e, h2.events.StreamEnded) for e in pair.server_events)


def test_a_response_in_one_headers_frame_is_head_then_end() -> None:
    """gRPC's Trailers-Only: :status and grpc-status in one HEADERS with END_STREAM."""
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, [(b":status", b"200"), (b"grpc-status", b"3")], end_stream=True)
    pair.pump()
    assert pair.client_events[-2:] == [
        ResponseReceived(1, [(b":status", b"200"), (b"grpc-status", b"3")]),
        StreamEnded(1),
    ]


def test_sending_stops_at_the_servers_window_and_resumes_on_window_update() -> None:
    pair = Pair()
    pair.client.send_headers(1, [(b":method", b"POST"), *REQUEST[1:]])
    body = b"b" * 100_000
    sent = pair.client.send_data(1, body)
    assert sent == 65_535  # the initial stream and connection windows (§6.9.2)
    assert pair.client.local_flow_control_window(1) == 0
    pair.pump()
    received = sum(e.flow_controlled_length for e in pair.server_events if hasattr(e, "data"))
    assert received == 65_535
    pair.server.acknowledge_received_data(received, 1)
    pair.pump()
    assert any(isinstance(e, WindowUpdated) and e.stream_id == 1 for e in pair.client_events)
    assert pair.client.send_data(1, body[sent:], end_stream=True) == len(body) - sent


def test_the_client_window_opens_only_as_the_application_consumes() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, [(b":status", b"200")])
    for _ in range(4):
        pair.server.send_data(1, b"d" * 10_000)
    pair.pump()
    assert pair.server.local_flow_control_window(1) == 65_535 - 40_000
    pair.client.acknowledge_received_data(40_000, 1)  # over half the window: returned
    pair.pump()
    assert pair.server.local_flow_control_window(1) == 65_535


def test_goaway_names_the_last_stream_processed() -> None:
    pair = Pair()
    for sid in (1, 3, 5):
        pair.client.send_headers(sid, REQUEST, end_stream=True)
    pair.pump()
    pair.server.close_connection(last_stream_id=3)
    pair.pump()
    (goaway,) = [e for e in pair.client_events if isinstance(e, ConnectionTerminated)]
    assert (goaway.error_code, goaway.last_stream_id, goaway.remote) == (0, 3, True)
    assert not pair.client.terminated  # streams up to 3 may still finish (§6.8)


def test_a_response_to_a_stream_the_client_reset_is_ignored() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, [(b":status", b"200"), (b"x-a", b"1")])
    pair.client.reset_stream(1)  # crosses the server's HEADERS on the wire
    to_client = pair.server.data_to_send()
    assert pair.client.receive_data(to_client) == []
    # The HPACK state stayed in step: the next response decodes.
    pair.client.send_headers(3, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(3, [(b":status", b"200"), (b"x-a", b"1")], end_stream=True)
    pair.pump()
    assert pair.client_events[-2] == ResponseReceived(3, [(b":status", b"200"), (b"x-a", b"1")])


def test_ping_and_settings_are_acknowledged() -> None:
    pair = Pair()
    pair.server.ping(b"12345678")
    pair.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7})
    pair.pump()
    assert any(isinstance(e, h2.events.PingAckReceived) for e in pair.server_events)
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in pair.server_events)
    assert pair.client.peer_settings[SettingCode.MAX_CONCURRENT_STREAMS] == 7
