"""Events: what parsers return and writers consume.

A parser turns bytes into a sequence of events that follows this grammar::

    request stream  = *( RequestHead ( *Body End / TUNNEL-STOP ) ) [ Invalid ]
    response stream = *( *ResponseHead(1xx) ResponseHead ( *Body End / TUNNEL-STOP ) ) [ Invalid ]

``Invalid`` is always the last event: the parser is dead afterwards. A head whose framing is
``TUNNEL`` is not followed by ``End``; the parser stops and the rest of the bytes belong to the
tunnel. Events are frozen, slotted value objects.

Building events cheaply. A frozen dataclass's ``__init__`` must set each field with
``object.__setattr__`` (the dataclasses docs note the cost), about 1,400 machine instructions a
field in CPython 3.11: the 8 fields of a RequestHead cost more than parsing its request line.
The parsers therefore build the hot events with ``new_request_head`` / ``new_end`` /
``new_body``: they fill a plain slotted twin class that has exactly the same slots (so the same
memory layout), then assign ``__class__``, which CPython allows between such classes. The result
*is* an instance of the frozen class, equal to what the constructor builds, with its eq, hash,
repr and immutability (``test_messages.py`` checks the layouts and the equality).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from thor.http.error import HttpError
from thor.http.headers import RawHeaderListType

__all__ = [
    "Body",
    "End",
    "Event",
    "Framing",
    "Invalid",
    "RequestHead",
    "ResponseHead",
    "new_body",
    "new_end",
    "new_request_head",
    "new_response_head",
]


class Framing(enum.Enum):
    """How the body after a head is delimited (RFC 9112 §6.3)."""

    NONE = "none"  # no content at all
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"  # chunked transfer coding, ends with the last chunk and trailers
    CLOSE = "close"  # the content runs until the connection closes (responses only)
    TUNNEL = "tunnel"  # the connection becomes a tunnel (CONNECT, 101 Switching Protocols)


# The members as module constants, for the hot paths. In CPython 3.11 EnumType defines
# __getattr__, so every ``Framing.NONE`` goes through a Python-level attribute hook: about
# 1,300 machine instructions (callgrind), where reading a global costs a few dozen.
FRAMING_NONE = Framing.NONE
FRAMING_LENGTH = Framing.LENGTH
FRAMING_CHUNKED = Framing.CHUNKED
FRAMING_CLOSE = Framing.CLOSE
FRAMING_TUNNEL = Framing.TUNNEL


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
    # The bytes of the head as it came: status line, field lines and the empty line (an
    # intermediary that keeps the response counts its memory by it).  Not compared: two
    # heads that say the same are equal however they were spelled.
    size: int = field(default=0, compare=False)


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


# --- fast construction (see the module docstring) -------------------------------------------


class _WritableRequestHead:
    __slots__ = RequestHead.__slots__  # the same slots in the same order: the same layout
    method: bytes
    target: bytes
    version: bytes
    headers: RawHeaderListType
    framing: Framing
    content_length: int | None
    keep_alive: bool
    expect_continue: bool


class _WritableResponseHead:
    __slots__ = ResponseHead.__slots__
    status: int
    phrase: bytes
    version: bytes
    headers: RawHeaderListType
    framing: Framing
    content_length: int | None
    keep_alive: bool
    size: int


class _WritableBody:
    __slots__ = Body.__slots__
    data: bytes


class _WritableEnd:
    __slots__ = End.__slots__
    trailers: RawHeaderListType


def new_request_head(
    method: bytes,
    target: bytes,
    version: bytes,
    headers: RawHeaderListType,
    framing: Framing,
    content_length: int | None,
    keep_alive: bool,
    expect_continue: bool,
) -> RequestHead:
    """``RequestHead(...)`` with the same arguments, built without ``object.__setattr__``."""
    head = _WritableRequestHead()
    head.method = method
    head.target = target
    head.version = version
    head.headers = headers
    head.framing = framing
    head.content_length = content_length
    head.keep_alive = keep_alive
    head.expect_continue = expect_continue
    head.__class__ = RequestHead  # type: ignore[assignment]
    return head  # type: ignore[return-value]


def new_response_head(
    status: int,
    phrase: bytes,
    version: bytes,
    headers: RawHeaderListType,
    framing: Framing,
    content_length: int | None,
    keep_alive: bool,
    size: int = 0,
) -> ResponseHead:
    """``ResponseHead(...)`` with the same arguments, built without ``object.__setattr__``."""
    head = _WritableResponseHead()
    head.status = status
    head.phrase = phrase
    head.version = version
    head.headers = headers
    head.framing = framing
    head.content_length = content_length
    head.keep_alive = keep_alive
    head.size = size
    head.__class__ = ResponseHead  # type: ignore[assignment]
    return head  # type: ignore[return-value]


def new_body(data: bytes) -> Body:
    """``Body(data)``, built without ``object.__setattr__``."""
    body = _WritableBody()
    body.data = data
    body.__class__ = Body  # type: ignore[assignment]
    return body  # type: ignore[return-value]


def new_end(trailers: RawHeaderListType) -> End:
    """``End(trailers)``, built without ``object.__setattr__``."""
    end = _WritableEnd()
    end.trailers = trailers
    end.__class__ = End  # type: ignore[assignment]
    return end  # type: ignore[return-value]
