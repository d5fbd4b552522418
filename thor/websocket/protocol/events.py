"""Events: what ``Connection.receive_data`` returns.

A connection's events follow this grammar::

    events  = *( message / Ping / Pong ) [ CloseReceived ] [ ProtocolError / ConnectionLost ]
    message = TextMessage / BytesMessage                      ; the default
            / *TextFragment TextFragment(final=True)          ; with fragments=True
            / *BytesFragment BytesFragment(final=True)

Pings and pongs may come between the fragments of a message (RFC 6455 §5.4). After
``CloseReceived`` the peer sends nothing more. ``ProtocolError`` and ``ConnectionLost`` are
always last: nothing is read afterwards (and after ``connection.fail()`` or a lost transport
the connection is ``CLOSED``).

Events are slotted value objects built by plain ``__init__`` (a frozen dataclass pays an
``object.__setattr__`` per field, see thor/http/protocol/messages.py): a message event is
made for every message on the hot path.
"""

from __future__ import annotations

__all__ = [
    "BytesFragment",
    "BytesMessage",
    "CloseReceived",
    "ConnectionLost",
    "Event",
    "Ping",
    "Pong",
    "ProtocolError",
    "TextFragment",
    "TextMessage",
]


class Event:
    """Base of the events; equal when of the same class with the same fields."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._fields() == self._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        pairs = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({pairs})"


class TextMessage(Event):
    """A whole text message, decoded."""

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data


class BytesMessage(Event):
    """A whole binary message."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class TextFragment(Event):
    """The text of one frame of a text message (with ``fragments=True``).

    A character split across frames is delivered whole with the later frame, so ``data`` may
    be empty; ``final`` marks the message's last frame.
    """

    __slots__ = ("data", "final")

    def __init__(self, data: str, final: bool) -> None:
        self.data = data
        self.final = final


class BytesFragment(Event):
    """The payload of one frame of a binary message (with ``fragments=True``)."""

    __slots__ = ("data", "final")

    def __init__(self, data: bytes, final: bool) -> None:
        self.data = data
        self.final = final


class Ping(Event):
    """A ping; answer it with ``connection.pong(event.payload)`` (RFC 6455 §5.5.2)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Pong(Event):
    """A pong, solicited or not (RFC 6455 §5.5.3)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class CloseReceived(Event):
    """The peer's close frame. ``code`` is 1005 when the frame had no payload (§7.1.5).

    If we had not sent a close, answer with ``connection.close()`` (which echoes ``code``);
    once both close frames are exchanged the connection is ``CLOSED``.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class ProtocolError(Event):
    """The peer broke the protocol: fail the connection (RFC 6455 §7.1.7).

    ``code`` is the close code for it (1002 protocol error, 1007 invalid payload data, 1009
    too big). The connection reads nothing more; answer with ``connection.fail(event.code,
    event.reason)``, send what it returns, then close the transport.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class ConnectionLost(Event):
    """The transport ended before the closing handshake completed (close code 1006, §7.1.5)."""

    __slots__ = ("code",)

    def __init__(self, code: int = 1006) -> None:
        self.code = code
