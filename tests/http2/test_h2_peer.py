"""Thor's server core against the ``h2`` package's client, in memory (bytes back and forth):
an independent implementation judges requests, responses, flow control, trailers, GOAWAY."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from thor.http2.protocol import (
    DataReceived,
    H2Connection,
    H2ConnectionError,
    LocalProtocolError,
    RequestReceived,
    StreamEnded,
    TrailersReceived,
    WindowUpdated,
)

REQUEST = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "example")]


class Pair:
    def __init__(self) -> None:
        self.server = H2Connection()
        self.server.initiate_connection()
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.client.initiate_connection()
        self.server_events: list = []
        self.client_events: list = []
        self.pump()

    def pump(self, chunk: int = 0) -> None:
        for _ in range(100):
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if not to_server and not to_client:
                return
            if chunk and to_server:
                for start in range(0, len(to_server), chunk):
                    self.server_events += self.server.receive_data(to_server[start : start + chunk])
            elif to_server:
                self.server_events += self.server.receive_data(to_server)
            if to_client:
                self.client_events += self.client.receive_data(to_client)
        raise AssertionError("no quiet after 100 exchanges")

    def take(self, kind: type) -> list:
        found = [e for e in self.client_events if isinstance(e, kind)]
        self.client_events = [e for e in self.client_events if not isinstance(e, kind)]
        return found


def test_a_request_and_response_with_h2() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump(chunk=1)  # byte by byte
    request, ended = pair.server_events[-2:]
    assert request == RequestReceived(1, [(k.encode(), v.encode()) for k, v in REQUEST])
    assert ended == StreamEnded(1)
    pair.server.send_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    pair.server.send_data(1, b"hello", end_stream=True)
    pair.pump()
    (response,) = pair.take(h2.events.ResponseReceived)
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    (data,) = pair.take(h2.events.DataReceived)
    assert data.data == b"hello"
    assert pair.take(h2.events.StreamEnded)


def test_many_streams_share_the_hpack_state() -> None:
    pair = Pair()
    for sid in range(1, 40, 2):
        pair.client.send_headers(
            sid, [*REQUEST, ("x-n", str(sid)), ("cookie", "a=" + "b" * 30)], end_stream=True
        )
    pair.pump(chunk=7)
    requests = [e for e in pair.server_events if isinstance(e, RequestReceived)]
    assert [dict(r.headers)[b"x-n"] for r in requests] == [str(s).encode() for s in range(1, 40, 2)]
    for request in requests:
        pair.server.send_headers(
            request.stream_id, [(b":status", b"200"), (b"set-cookie", b"x=1")], end_stream=True
        )
    pair.pump()
    assert len(pair.take(h2.events.ResponseReceived)) == 20


def test_a_large_upload_and_download_under_flow_control() -> None:
    pair = Pair()
    body = bytes(range(256)) * 2000  # 512,000 bytes each way
    pair.client.send_headers(1, [(":method", "POST"), *REQUEST[1:]])
    received = bytearray()
    sent = 0
    ended = False
    for _ in range(500):
        window = pair.client.local_flow_control_window(1)
        if sent < len(body) and window:
            size = min(window, len(body) - sent, 16384)
            pair.client.send_data(1, body[sent : sent + size], end_stream=sent + size == len(body))
            sent += size
        pair.pump()
        for event in pair.server_events:
            if isinstance(event, DataReceived):
                received += event.data
                pair.server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            ended = ended or isinstance(event, StreamEnded)
        pair.server_events.clear()
        pair.pump()
        if ended:
            break
    assert bytes(received) == body
    pair.server.send_headers(1, [(b":status", b"200")])
    out = 0
    got = bytearray()
    for _ in range(500):
        out += pair.server.send_data(1, body[out:], end_stream=True)
        pair.pump()
        for event in pair.take(h2.events.DataReceived):
            got += event.data
            pair.client.acknowledge_received_data(event.flow_controlled_length, 1)
        pair.pump()
        if out == len(body):
            break
    assert any(isinstance(e, WindowUpdated) for e in pair.server_events)
    assert bytes(got) == body
    assert pair.take(h2.events.StreamEnded)


def test_trailers_both_ways() -> None:
    pair = Pair()
    pair.client.send_headers(1, [(":method", "POST"), *REQUEST[1:], ("te", "trailers")])
    pair.client.send_data(1, b"ping")
    pair.client.send_headers(1, [("x-checksum", "abc")], end_stream=True)
    pair.pump()
    assert TrailersReceived(1, [(b"x-checksum", b"abc")]) in pair.server_events
    pair.server.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    pair.server.send_data(1, b"pong")
    pair.server.send_trailers(1, [(b"grpc-status", b"0")])
    pair.pump()
    (trailers,) = pair.take(h2.events.TrailersReceived)
    assert trailers.headers == [(b"grpc-status", b"0")]


def test_goaway_reaches_h2() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.close_connection()
    pair.pump()
    (event,) = pair.take(h2.events.ConnectionTerminated)
    assert event.error_code == 0
    assert event.last_stream_id == 1


def test_a_1xx_then_the_response() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, [(b":status", b"103"), (b"link", b"</style.css>; rel=preload")])
    pair.server.send_headers(1, [(b":status", b"204")], end_stream=True)
    pair.pump()
    assert pair.take(h2.events.InformationalResponseReceived)
    assert pair.take(h2.events.ResponseReceived)


def test_h2_ping_and_settings_changes() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    pair.pump()
    assert pair.take(h2.events.PingAckReceived)
    assert pair.take(h2.events.SettingsAcknowledged)
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, [(b":status", b"200")])
    assert pair.server.send_data(1, b"x" * 1000) == 100


def test_an_h2c_upgrade_from_h2() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings_header = client.initiate_upgrade_connection()
    server = H2Connection()
    server.initiate_upgrade_connection(settings_header)
    assert server.peer_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 100
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"upgraded", end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert [type(e).__name__ for e in events] == ["SettingsChanged"]
    client_events = client.receive_data(server.data_to_send())
    (data,) = [e for e in client_events if isinstance(e, h2.events.DataReceived)]
    assert data.data == b"upgraded"
    assert server.streams == {}


def test_a_bad_upgrade_settings_header_is_refused() -> None:
    for value in (b"AAEAABAAAA", b"!!!!", b"AAIAAAAC"):  # 10 bytes; not base64; ENABLE_PUSH=2
        with pytest.raises(H2ConnectionError):
            H2Connection().initiate_upgrade_connection(value)
    with pytest.raises(LocalProtocolError):
        H2Connection(client_side=True).initiate_upgrade_connection(b"")
