"""HTTP/2 error codes (RFC 9113 §7) and the errors the core raises, one class per cause.

RFC 9113 §5.4 sorts errors in two: a *connection error* ends the connection with GOAWAY; a
*stream error* ends one stream with RST_STREAM and the connection carries on.  Each class
carries its ``code`` (an ``ErrorCode``), the HTTP/2 analogue of an HTTP error's status.
``LocalProtocolError`` is the application's mistake (an invalid call), never the peer's.
"""

from __future__ import annotations

import enum

__all__ = [
    "ErrorCode",
    "FlowControlError",
    "FrameSizeError",
    "H2ConnectionError",
    "H2Error",
    "H2StreamError",
    "HeaderListTooLarge",
    "HpackError",
    "LocalProtocolError",
    "StreamClosedError",
]


class ErrorCode(enum.IntEnum):
    """RFC 9113 §7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


def error_code(value: int) -> ErrorCode | int:
    """An ``ErrorCode`` if known; unknown codes stay ints (§7: they MUST NOT trigger anything)."""
    try:
        return ErrorCode(value)
    except ValueError:
        return value


class H2Error(Exception):
    """Something the peer did wrong; ``code`` is what the RFC says to answer with."""

    code: ErrorCode = ErrorCode.PROTOCOL_ERROR

    def __init__(self, detail: str, code: ErrorCode | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class H2ConnectionError(H2Error):
    """A connection error (RFC 9113 §5.4.1): GOAWAY with ``code``, then close."""


class FrameSizeError(H2ConnectionError):
    code = ErrorCode.FRAME_SIZE_ERROR


class FlowControlError(H2ConnectionError):
    code = ErrorCode.FLOW_CONTROL_ERROR


class HpackError(H2ConnectionError):
    """A field block that cannot be decoded (RFC 7541 §2.3.3, §4.2, §5.2; RFC 9113 §4.3)."""

    code = ErrorCode.COMPRESSION_ERROR


class H2StreamError(H2Error):
    """A stream error (RFC 9113 §5.4.2): RST_STREAM with ``code`` on ``stream_id``."""

    def __init__(self, stream_id: int, detail: str, code: ErrorCode | None = None) -> None:
        super().__init__(detail, code)
        self.stream_id = stream_id


class StreamClosedError(H2StreamError):
    code = ErrorCode.STREAM_CLOSED


class HeaderListTooLarge(Exception):
    """The decoded field list passed the limit; the block was still decoded to keep HPACK's
    state in step (RFC 9113 §4.3), but its fields were dropped as they came."""

    def __init__(self, size: int) -> None:
        super().__init__(f"field list of at least {size} bytes")
        self.size = size


class LocalProtocolError(Exception):
    """The application asked for something HTTP/2 does not allow (a local mistake)."""
