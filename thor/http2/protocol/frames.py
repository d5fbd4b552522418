"""The frame layer (RFC 9113 §4, §6): bytes to frames, and frames to bytes.

Theory of operation.  ``FrameReader`` keeps what it was fed and hands out one ``Frame`` per
call of ``next_frame()`` once its 9-byte header (§4.1) and whole payload are in, or ``None``.
It checks what can be checked from one frame alone, the rules of §6 that do not need stream
state: the size against SETTINGS_MAX_FRAME_SIZE (§4.2), the stream id each type requires
(0 or not 0), the exact or minimum length of fixed-size payloads, and padding (§6.1, §6.2).
It strips padding and HEADERS' priority fields, so a ``Frame``'s ``payload`` is the content
alone; ``flow_length`` keeps the length that counts against flow control (§6.9: the whole
DATA payload, padding included).  Errors are raised at the offending frame, after the frames
before it were handed out; the reader is unusable afterwards, as is the connection.

The writers build each frame type's bytes; they trust their caller (the connection checks).
"""

from __future__ import annotations

import enum
import struct

from thor.http2.protocol.errors import ErrorCode, FrameSizeError, H2ConnectionError, H2StreamError

__all__ = [
    "ACK",
    "END_HEADERS",
    "END_STREAM",
    "PADDED",
    "PRIORITY_FLAG",
    "Frame",
    "FrameReader",
    "FrameType",
    "continuation_frame",
    "data_frame",
    "data_header",
    "goaway_frame",
    "headers_frames",
    "ping_frame",
    "rst_stream_frame",
    "settings_frame",
    "window_update_frame",
]


class FrameType(enum.IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


# Read as plain ints on the hot path.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

STREAM_ID_MASK = 0x7FFFFFFF  # §4.1: the reserved bit is ignored on receipt
_HEADER = struct.Struct(">BHBBL")  # length as 8 + 16 bits, type, flags, stream id
_UNPACK_HEADER = _HEADER.unpack_from
_PACK_HEADER = _HEADER.pack

# Stream id rules per type (§6): True: must be 0; False: must not be 0.
_CONNECTION_ONLY = {SETTINGS: True, PING: True, GOAWAY: True}
_STREAM_ONLY = (DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION)
# Exact payload lengths (§6.3, §6.4, §6.7, §6.9); PRIORITY's is a stream error (§6.3).
_EXACT_LENGTH = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}


class Frame:
    """One frame: ``type`` (int, a ``FrameType`` value or an unknown one), ``flags``,
    ``stream_id``, ``payload`` (padding and priority fields removed), ``flow_length`` (DATA:
    the length flow control counts) and ``dependency`` (HEADERS with PRIORITY: the stream
    it depends on, else -1)."""

    __slots__ = ("dependency", "flags", "flow_length", "payload", "stream_id", "type")

    def __init__(
        self,
        type: int,
        flags: int,
        stream_id: int,
        payload: bytes,
        flow_length: int = 0,
        dependency: int = -1,
    ) -> None:
        self.type = type
        self.flags = flags
        self.stream_id = stream_id
        self.payload = payload
        self.flow_length = flow_length
        self.dependency = dependency

    def __repr__(self) -> str:
        return (
            f"Frame({self.type}, flags={self.flags:#x}, stream={self.stream_id}, "
            f"{len(self.payload)} bytes)"
        )


class FrameReader:
    """Bytes in (``feed``), checked frames out (``next_frame``)."""

    __slots__ = ("_buffer", "_pos", "max_frame_size")

    def __init__(self, max_frame_size: int = 16384) -> None:
        self._buffer: bytes | bytearray = b""
        self._pos = 0
        self.max_frame_size = max_frame_size

    def feed(self, data: bytes) -> None:
        # A whole-frames feed is kept as it came (no copy); a frame split over feeds is
        # gathered in a bytearray, so trickled input costs O(n), not O(n²).
        buffer, pos = self._buffer, self._pos
        if pos >= len(buffer):
            self._buffer = data
        elif isinstance(buffer, bytearray):
            del buffer[:pos]
            buffer += data
        else:
            self._buffer = bytearray(buffer[pos:]) + data
        self._pos = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._pos

    def next_frame(self) -> Frame | None:
        buffer, pos = self._buffer, self._pos
        if len(buffer) - pos < 9:
            return None
        high, low, type_, flags, stream_id = _UNPACK_HEADER(buffer, pos)
        length = (high << 16) | low
        if length > self.max_frame_size:
            self._pos = len(buffer)
            raise FrameSizeError(f"frame of {length} bytes over SETTINGS_MAX_FRAME_SIZE (§4.2)")
        end = pos + 9 + length
        if end > len(buffer):
            return None
        self._pos = end
        stream_id &= STREAM_ID_MASK
        payload = bytes(buffer[pos + 9 : end])
        if type_ == DATA:
            if not stream_id:
                raise H2ConnectionError("DATA on stream 0 (§6.1)")
            if flags & PADDED:
                return Frame(type_, flags, stream_id, _unpad(payload), length)
            return Frame(type_, flags, stream_id, payload, length)
        if type_ == HEADERS:
            return _headers(flags, stream_id, payload)
        _check_stream_id(type_, stream_id)
        _check_length(type_, flags, stream_id, length)
        return Frame(type_, flags, stream_id, payload)


def _check_stream_id(type_: int, stream_id: int) -> None:
    if type_ in _CONNECTION_ONLY:
        if stream_id:
            raise H2ConnectionError(f"frame type {type_} on stream {stream_id} (§6)")
    elif not stream_id and type_ in _STREAM_ONLY:
        raise H2ConnectionError(f"frame type {type_} on stream 0 (§6)")


def _check_length(type_: int, flags: int, stream_id: int, length: int) -> None:
    exact = _EXACT_LENGTH.get(type_)
    if exact is not None and length != exact:
        if type_ == PRIORITY:
            raise H2StreamError(
                stream_id, "PRIORITY not 5 bytes (§6.3)", ErrorCode.FRAME_SIZE_ERROR
            )
        raise FrameSizeError(f"frame type {type_} of {length} bytes, not {exact} (§6)")
    if type_ == SETTINGS:
        if flags & ACK and length:
            raise FrameSizeError("SETTINGS ACK with a payload (§6.5)")
        if length % 6:
            raise FrameSizeError("SETTINGS length not a multiple of 6 (§6.5)")
    elif type_ == GOAWAY and length < 8:
        raise FrameSizeError("GOAWAY shorter than 8 bytes (§6.8)")


def _unpad(payload: bytes) -> bytes:
    """§6.1, §6.2: strip Pad Length and padding."""
    if not payload:
        raise FrameSizeError("PADDED frame without a Pad Length (§6.1)")
    pad = payload[0]
    if pad >= len(payload):
        raise H2ConnectionError("padding as long as the payload (§6.1, §6.2)")
    return payload[1 : len(payload) - pad]


def _headers(flags: int, stream_id: int, payload: bytes) -> Frame:
    if not stream_id:
        raise H2ConnectionError("HEADERS on stream 0 (§6.2)")
    if flags & PADDED:
        payload = _unpad(payload)
    dependency = -1
    if flags & PRIORITY_FLAG:
        # §6.2: Exclusive bit + 31-bit dependency + weight; only kept to reject a stream
        # depending on itself (§5.3.1), priority signals being otherwise ignored (§5.3.2).
        if len(payload) < 5:
            raise FrameSizeError("HEADERS too short for its priority fields (§6.2)")
        dependency = int.from_bytes(payload[:4], "big") & STREAM_ID_MASK
        payload = payload[5:]
    return Frame(HEADERS, flags, stream_id, payload, 0, dependency)


# Writers ------------------------------------------------------------------------------------


def _frame(type_: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    length = len(payload)
    return _PACK_HEADER(length >> 16, length & 0xFFFF, type_, flags, stream_id) + payload


def data_header(stream_id: int, length: int, end_stream: bool = False) -> bytes:
    """The 9 bytes before a DATA payload, so a large payload is queued without a copy."""
    flags = END_STREAM if end_stream else 0
    return _PACK_HEADER(length >> 16, length & 0xFFFF, DATA, flags, stream_id)


def data_frame(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
    return _frame(DATA, END_STREAM if end_stream else 0, stream_id, data)


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame_size: int) -> bytes:
    """HEADERS, and CONTINUATION frames when ``block`` exceeds the peer's frame size (§4.3)."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame_size:
        return _frame(HEADERS, flags | END_HEADERS, stream_id, block)
    out = [_frame(HEADERS, flags, stream_id, block[:max_frame_size])]
    for start in range(max_frame_size, len(block), max_frame_size):
        last = start + max_frame_size >= len(block)
        chunk = block[start : start + max_frame_size]
        out.append(continuation_frame(stream_id, chunk, last))
    return b"".join(out)


def continuation_frame(stream_id: int, block: bytes, end_headers: bool) -> bytes:
    return _frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, block)


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    return _frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


def settings_frame(settings: dict[int, int] | None = None, ack: bool = False) -> bytes:
    payload = b"".join(
        key.to_bytes(2, "big") + value.to_bytes(4, "big") for key, value in (settings or {}).items()
    )
    return _frame(SETTINGS, ACK if ack else 0, 0, payload)


def ping_frame(opaque: bytes, ack: bool = False) -> bytes:
    return _frame(PING, ACK if ack else 0, 0, opaque)


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return _frame(GOAWAY, 0, 0, last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big") + debug)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return _frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))
