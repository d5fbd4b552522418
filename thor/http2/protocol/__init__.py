"""Thor's sans-IO HTTP/2 core (RFC 9113, RFC 7541): pure objects fed bytes, returning events.

Nothing here touches a socket, a loop, a clock or a thread; ``test_sans_io.py`` checks it.
``H2Connection`` is the entry point; ``hpack`` and ``frames`` stand alone.  See
``docs/http2.md``.
"""

from __future__ import annotations

from thor.http2.protocol.connection import PREFACE, H2Connection
from thor.http2.protocol.errors import (
    ErrorCode,
    FlowControlError,
    FrameSizeError,
    H2ConnectionError,
    H2Error,
    H2StreamError,
    HeaderListTooLarge,
    HpackError,
    LocalProtocolError,
    StreamClosedError,
)
from thor.http2.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalReceived,
    PingAcknowledged,
    PingReceived,
    RequestReceived,
    ResponseReceived,
    SettingsAcknowledged,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from thor.http2.protocol.frames import FrameType
from thor.http2.protocol.hpack import Decoder, Encoder
from thor.http2.protocol.settings import H2Config, SettingCode
from thor.http2.protocol.stream import StreamState

__all__ = [
    "PREFACE",
    "ConnectionTerminated",
    "DataReceived",
    "Decoder",
    "Encoder",
    "ErrorCode",
    "Event",
    "FlowControlError",
    "FrameSizeError",
    "FrameType",
    "H2Config",
    "H2Connection",
    "H2ConnectionError",
    "H2Error",
    "H2StreamError",
    "HeaderListTooLarge",
    "HpackError",
    "InformationalReceived",
    "LocalProtocolError",
    "PingAcknowledged",
    "PingReceived",
    "RequestReceived",
    "ResponseReceived",
    "SettingCode",
    "SettingsAcknowledged",
    "SettingsChanged",
    "StreamClosedError",
    "StreamEnded",
    "StreamReset",
    "StreamState",
    "TrailersReceived",
    "WindowUpdated",
]
