"""Events: what parsers return and writers consume.

A parser turns bytes into a sequence of events that follows this grammar::

    request stream  = *( RequestHead ( *Body End / TUNNEL-STOP ) ) [ Invalid ]
    response stream = *( *ResponseHead(1xx) ResponseHead ( *Body End / TUNNEL-STOP ) ) [ Invalid ]

``Invalid`` is always the last event: the parser is dead afterwards. A head whose framing is
``TUNNEL`` is not followed by ``End``; the parser stops and the rest of the bytes belong to the
tunnel. Events are frozen, slotted value objects.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from thor.http.error import HttpError
from thor.http.headers import RawHeaderListType

__all__ = ["Body", "End", "Event", "Framing", "Invalid", "RequestHead", "ResponseHead"]


class Framing(enum.Enum):
    """How the body after a head is delimited (RFC 9112 §6.3)."""

    NONE = "none"  # no content at all
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"  # chunked transfer coding, ends with the last chunk and trailers
    CLOSE = "close"  # the content runs until the connection closes (responses only)
    TUNNEL = "tunnel"  # the connection becomes a tunnel (CONNECT, 101 Switching Protocols)


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: bytes
    target: bytes
    version: bytes  # b"1.1" or b"1.0"
    headers: RawHeaderListType
    framing: Framing
    content_length: int | None
    keep_alive: bool  # RFC 9112 §9.3
    expect_continue: bool  # "Expect: 100-continue" on HTTP/1.1 with a body (RFC 9110 §10.1.1)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    phrase: bytes
    version: bytes
    headers: RawHeaderListType
    framing: Framing
    content_length: int | None
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes


@dataclass(frozen=True, slots=True)
class End:
    trailers: RawHeaderListType


@dataclass(frozen=True, slots=True)
class Invalid:
    error: HttpError


Event = RequestHead | ResponseHead | Body | End | Invalid
