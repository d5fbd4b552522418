"""Decoded header blocks to stream events (RFC 9113 §8.1): request heads, response heads,
1xx and trailers, with the stream-level checks each gets.

``connection.py`` gathers and decodes the block and applies the connection-wide rules (which
side may open which stream, GOAWAY); the functions here decide what one block means for its
stream: a new request (subject to SETTINGS_MAX_CONCURRENT_STREAMS and the field list size),
a response head or 1xx (client role), or trailers (§8.1: a last HEADERS with END_STREAM and
no pseudo-header fields).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thor.http2.protocol.errors import ErrorCode, H2StreamError, HeaderListTooLarge
from thor.http2.protocol.events import (
    Event,
    InformationalReceived,
    RequestReceived,
    ResponseReceived,
    StreamReset,
    TrailersReceived,
)
from thor.http2.protocol.fields import check_request, check_response, check_trailers
from thor.http2.protocol.frames import END_STREAM, Frame, headers_frames, rst_stream_frame
from thor.http2.protocol.hpack import Decoder
from thor.http2.protocol.settings import SettingCode
from thor.http2.protocol.stream import OPEN, RECV_HEADERS, Stream

if TYPE_CHECKING:
    from thor.http2.protocol.connection import H2Connection

__all__ = ["decode_block", "on_later_headers", "open_stream"]

Fields = list[tuple[bytes, bytes]]
TOO_LARGE = [(b":status", b"431")]


def decode_block(decoder: Decoder, block: bytes) -> Fields | None:
    """The block's fields, or None when they pass SETTINGS_MAX_HEADER_LIST_SIZE."""
    try:
        return decoder.decode(block)
    except HeaderListTooLarge:
        return None


def open_stream(
    conn: H2Connection, frame: Frame, fields: Fields | None, events: list[Event]
) -> None:
    """A HEADERS frame opening stream ``frame.stream_id`` (server role)."""
    sid = frame.stream_id
    if frame.dependency == sid:
        raise H2StreamError(sid, "stream depends on itself (§5.3.1)")
    if fields is None:
        _answer_too_large(conn, sid, not frame.flags & END_STREAM, events)
        return
    if len(conn.streams) >= conn.config.max_concurrent_streams:
        raise H2StreamError(
            sid, "over SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2)", ErrorCode.REFUSED_STREAM
        )
    expected_length = check_request(sid, fields)
    if expected_length > 0 and frame.flags & END_STREAM:
        raise H2StreamError(sid, "content-length but no DATA (§8.1.1)")
    stream = Stream(
        sid, conn.config.initial_window_size, conn.peer_settings[SettingCode.INITIAL_WINDOW_SIZE]
    )
    stream.state = OPEN  # IDLE --recv HEADERS--> OPEN
    stream.expected_length = expected_length
    stream.head_done = True
    conn.streams[sid] = stream
    events.append(RequestReceived(sid, fields))
    if frame.flags & END_STREAM:
        conn.end_remote(stream, events)


def _answer_too_large(
    conn: H2Connection, sid: int, body_follows: bool, events: list[Event]
) -> None:
    """RFC 9113 §10.5.1 and RFC 6585 §5: answer 431 and, if a body would follow, ask the
    client to stop sending it with RST_STREAM NO_ERROR (§8.1)."""
    block = conn.encoder.encode(TOO_LARGE)
    max_frame = conn.peer_settings[SettingCode.MAX_FRAME_SIZE]
    conn.queue_control(headers_frames(sid, block, True, max_frame))
    if body_follows:
        conn.queue_control(rst_stream_frame(sid, ErrorCode.NO_ERROR))
    conn.remember_closed(sid, True)
    events.append(StreamReset(sid, ErrorCode.NO_ERROR, False, 431))


def on_later_headers(
    conn: H2Connection, stream: Stream, fields: Fields | None, frame: Frame, events: list[Event]
) -> None:
    """HEADERS on a stream already open: trailers, or (client role) the response or a 1xx."""
    sid = stream.id
    if fields is None:
        raise H2StreamError(sid, "trailers over SETTINGS_MAX_HEADER_LIST_SIZE (§10.5.1)")
    stream.move(RECV_HEADERS)  # STREAM_CLOSED once the peer has ended the stream (§5.1)
    end = frame.flags & END_STREAM
    if conn.client_side and not stream.head_done:
        status, length = check_response(sid, fields)
        if status < 200:
            if end:
                raise H2StreamError(sid, "1xx response with END_STREAM (§8.1)")
            events.append(InformationalReceived(sid, fields))
            return
        stream.head_done = True
        # The request method is the caller's (HEAD, 304): content-length is not enforced.
        del length
        events.append(ResponseReceived(sid, fields))
    else:
        if not end:
            raise H2StreamError(sid, "trailers without END_STREAM (§8.1)")
        check_trailers(sid, fields)
        events.append(TrailersReceived(sid, fields))
    if end:
        conn.end_remote(stream, events)
