"""Thor's core in the client role against the ``h2`` package's server, in memory."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest

from thor.http2.protocol import (
    DataReceived,
    ErrorCode,
    H2Connection,
    InformationalReceived,
    LocalProtocolError,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
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
