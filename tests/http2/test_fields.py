"""RFC 9113 §8: malformed requests are stream errors PROTOCOL_ERROR, never events."""

from __future__ import annotations

import pytest

from thor.http2.protocol import DataReceived, ErrorCode, RequestReceived, StreamReset
from thor.http2.protocol.errors import H2StreamError
from thor.http2.protocol.fields import check_response, check_trailers
from thor.http2.protocol.frames import data_frame

from .peer import REQUEST, Peer

GET, SCHEME, PATH, AUTHORITY = REQUEST

MALFORMED = {
    "uppercase name": [*REQUEST, (b"X-Upper", b"1")],
    "space in name": [*REQUEST, (b"x y", b"1")],
    "empty name": [*REQUEST, (b"", b"1")],
    "NUL in value": [*REQUEST, (b"x", b"a\x00b")],
    "CR in value": [*REQUEST, (b"x", b"a\rb")],
    "LF in value": [*REQUEST, (b"x", b"a\nb")],
    "leading space": [*REQUEST, (b"x", b" a")],
    "trailing tab": [*REQUEST, (b"x", b"a\t")],
    "connection": [*REQUEST, (b"connection", b"close")],
    "keep-alive": [*REQUEST, (b"keep-alive", b"5")],
    "proxy-connection": [*REQUEST, (b"proxy-connection", b"x")],
    "transfer-encoding": [*REQUEST, (b"transfer-encoding", b"chunked")],
    "upgrade": [*REQUEST, (b"upgrade", b"h2c")],
    "te gzip": [*REQUEST, (b"te", b"gzip")],
    "pseudo after regular": [GET, SCHEME, (b"x", b"1"), PATH],
    "unknown pseudo": [*REQUEST, (b":foo", b"1")],
    "response pseudo": [*REQUEST, (b":status", b"200")],
    "repeated pseudo": [GET, SCHEME, PATH, PATH],
    "no method": [SCHEME, PATH, AUTHORITY],
    "no scheme": [GET, PATH, AUTHORITY],
    "no path": [GET, SCHEME, AUTHORITY],
    "empty path": [GET, SCHEME, (b":path", b""), AUTHORITY],
    "CONNECT with path": [(b":method", b"CONNECT"), AUTHORITY, PATH],
    "CONNECT without authority": [(b":method", b"CONNECT")],
    "authority vs host": [*REQUEST, (b"host", b"elsewhere")],
    "bad content-length": [*REQUEST, (b"content-length", b"1x")],
    "two content-lengths": [*REQUEST, (b"content-length", b"1"), (b"content-length", b"2")],
    "CR in pseudo": [GET, SCHEME, (b":path", b"/\r"), AUTHORITY],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_requests_are_reset(name: str) -> None:
    peer = Peer()
    events = peer.request(1, MALFORMED[name])
    assert events == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)], name
    assert not peer.server.terminated
    assert peer.request(3) != []  # the connection carries on, HPACK in step


def test_valid_variants_pass() -> None:
    peer = Peer()
    fields = [*REQUEST, (b"host", b"a"), (b"te", b"trailers"), (b"x-empty", b"")]
    assert peer.request(1, fields)[0] == RequestReceived(1, fields)
    connect = [(b":method", b"CONNECT"), AUTHORITY]
    assert peer.request(3, connect)[0] == RequestReceived(3, connect)


@pytest.mark.parametrize(("declared", "sent"), [(b"5", b"abc"), (b"2", b"abc"), (b"1", b"")])
def test_content_length_must_agree_with_data(declared: bytes, sent: bytes) -> None:
    peer = Peer()
    fields = [(b":method", b"POST"), SCHEME, PATH, AUTHORITY, (b"content-length", declared)]
    peer.request(1, fields, end_stream=False)
    events = peer.send(data_frame(1, sent, end_stream=True))
    assert events[-1] == StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)


def test_content_length_across_frames() -> None:
    peer = Peer()
    fields = [(b":method", b"POST"), SCHEME, PATH, AUTHORITY, (b"content-length", b"4")]
    peer.request(1, fields, end_stream=False)
    events = peer.send(data_frame(1, b"ab") + data_frame(1, b"cd", end_stream=True))
    assert events[:2] == [DataReceived(1, b"ab", 2), DataReceived(1, b"cd", 2)]


def test_trailers_with_pseudo_headers_or_without_end_stream() -> None:
    peer = Peer()
    peer.request(1, [(b":method", b"POST"), SCHEME, PATH, AUTHORITY], end_stream=False)
    (event,) = peer.send(peer.headers(1, [(b":path", b"/")], 0x4 | 0x1))
    assert event == StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)
    peer.request(3, [(b":method", b"POST"), SCHEME, PATH, AUTHORITY], end_stream=False)
    (event,) = peer.send(peer.headers(3, [(b"x", b"y")], 0x4))
    assert event == StreamReset(3, ErrorCode.PROTOCOL_ERROR, False)


def test_response_and_trailer_checks() -> None:
    assert check_response(1, [(b":status", b"204"), (b"content-length", b"0")]) == (204, 0)
    for bad in ([(b":status", b"20")], [(b"x", b"y")], [(b":status", b"200"), (b":path", b"/")]):
        with pytest.raises(H2StreamError):
            check_response(1, bad)
    with pytest.raises(H2StreamError):
        check_trailers(1, [(b":status", b"200")])


def test_a_content_length_with_end_stream_on_the_head_is_reset_before_any_event() -> None:
    peer = Peer()
    events = peer.request(1, [*REQUEST, (b"content-length", b"5")], end_stream=True)
    assert events == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)]
    events = peer.request(3, [*REQUEST, (b"content-length", b"0")], end_stream=True)
    assert [type(e).__name__ for e in events] == ["RequestReceived", "StreamEnded"]
