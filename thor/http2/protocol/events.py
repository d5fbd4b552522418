"""What the HTTP/2 core reports: one class per event, returned by ``receive_data``.

Per stream, events come in this order (a grammar, as each emitter in Thor documents)::

    RequestReceived (InformationalReceived* ResponseReceived for the client role)
    DataReceived* TrailersReceived? StreamEnded
    | ... StreamReset               (at any point after the first)

``StreamEnded`` follows the event of the frame that carried END_STREAM.  Connection-level
events (``SettingsChanged``, ``SettingsAcknowledged``, ``PingReceived``, ``PingAcknowledged``,
``WindowUpdated`` on stream 0, ``ConnectionTerminated``) come between them in wire order.
A ``ConnectionTerminated`` of this side's (``remote=False``) is the last event of a
connection; after the peer's GOAWAY, streams up to its ``last_stream_id`` may still finish.
"""

from __future__ import annotations

import dataclasses

from thor.http2.protocol.errors import ErrorCode

__all__ = [
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "InformationalReceived",
    "PingAcknowledged",
    "PingReceived",
    "RequestReceived",
    "ResponseReceived",
    "SettingsAcknowledged",
    "SettingsChanged",
    "StreamEnded",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
]

Fields = list[tuple[bytes, bytes]]


class Event:
    """Base class of the core's events."""

    __slots__ = ()


@dataclasses.dataclass(slots=True)
class RequestReceived(Event):
    """A request head (server role); ``headers`` checked against RFC 9113 §8."""

    stream_id: int
    headers: Fields


@dataclasses.dataclass(slots=True)
class ResponseReceived(Event):
    """A final response head (client role)."""

    stream_id: int
    headers: Fields


@dataclasses.dataclass(slots=True)
class InformationalReceived(Event):
    """A 1xx response head (client role, §8.1)."""

    stream_id: int
    headers: Fields


@dataclasses.dataclass(slots=True)
class DataReceived(Event):
    """Body bytes.  ``flow_controlled_length`` (padding included) is what to pass to
    ``acknowledge_received_data`` once the application has consumed them."""

    stream_id: int
    data: bytes
    flow_controlled_length: int


@dataclasses.dataclass(slots=True)
class TrailersReceived(Event):
    stream_id: int
    headers: Fields


@dataclasses.dataclass(slots=True)
class StreamEnded(Event):
    """The peer has finished sending on this stream (END_STREAM)."""

    stream_id: int


@dataclasses.dataclass(slots=True)
class StreamReset(Event):
    """The stream ended abnormally: ``remote`` if the peer sent RST_STREAM, else this side
    reset it for the peer's error (``error_code`` says which); ``status`` is set when the
    core answered the request itself instead (431 for a field list over the limit)."""

    stream_id: int
    error_code: ErrorCode | int
    remote: bool = True
    status: int = 0


@dataclasses.dataclass(slots=True)
class WindowUpdated(Event):
    """The peer opened a send window; stream 0 means the connection's."""

    stream_id: int
    delta: int


@dataclasses.dataclass(slots=True)
class SettingsChanged(Event):
    """The peer's SETTINGS were applied (and acknowledged)."""

    changed: dict[int, int]


@dataclasses.dataclass(slots=True)
class SettingsAcknowledged(Event):
    """The peer acknowledged this side's SETTINGS."""


@dataclasses.dataclass(slots=True)
class PingReceived(Event):
    """The peer sent PING; the core has queued the ACK."""

    data: bytes


@dataclasses.dataclass(slots=True)
class PingAcknowledged(Event):
    data: bytes


@dataclasses.dataclass(slots=True)
class ConnectionTerminated(Event):
    """The connection is over: the peer sent GOAWAY (``remote``) or this side did after a
    connection error (``error_code`` and ``detail`` say which)."""

    error_code: ErrorCode | int
    last_stream_id: int
    additional_data: bytes = b""
    remote: bool = True
    detail: str = ""
