"""Stream states (RFC 9113 §5.1) as an Enum and a transition table, and the per-stream record.

Rules (the table below is the whole of them; a missing key is an illegal transition)::

    IDLE               --recv HEADERS-->      OPEN                (server role)
    IDLE               --send HEADERS-->      OPEN                (client role)
    OPEN               --recv END_STREAM-->   HALF_CLOSED_REMOTE
    OPEN               --send END_STREAM-->   HALF_CLOSED_LOCAL
    HALF_CLOSED_LOCAL  --recv END_STREAM-->   CLOSED
    HALF_CLOSED_REMOTE --send END_STREAM-->   CLOSED
    any but IDLE       --send/recv RST_STREAM--> CLOSED

HEADERS received on an open stream (trailers, or after a 1xx) and HEADERS sent on an open
stream keep the state.  The reserved states exist only with server push, which this core
neither sends nor accepts (SETTINGS_ENABLE_PUSH is 0; a PUSH_PROMISE is a PROTOCOL_ERROR).
"""

from __future__ import annotations

import enum

from thor.http2.protocol.errors import ErrorCode, H2StreamError, LocalProtocolError

__all__ = ["Stream", "StreamInput", "StreamState", "transition"]


class StreamState(enum.Enum):
    # Identity hashing: Enum's own __hash__ is a Python call, paid on every table lookup.
    __hash__ = object.__hash__

    IDLE = "idle"
    OPEN = "open"
    HALF_CLOSED_LOCAL = "half-closed (local)"
    HALF_CLOSED_REMOTE = "half-closed (remote)"
    CLOSED = "closed"


class StreamInput(enum.Enum):
    __hash__ = object.__hash__

    RECV_HEADERS = "recv HEADERS"
    SEND_HEADERS = "send HEADERS"
    RECV_END_STREAM = "recv END_STREAM"
    SEND_END_STREAM = "send END_STREAM"
    RECV_RST_STREAM = "recv RST_STREAM"
    SEND_RST_STREAM = "send RST_STREAM"


S, In = StreamState, StreamInput
IDLE, OPEN, CLOSED = S.IDLE, S.OPEN, S.CLOSED
HALF_CLOSED_LOCAL, HALF_CLOSED_REMOTE = S.HALF_CLOSED_LOCAL, S.HALF_CLOSED_REMOTE
RECV_HEADERS, SEND_HEADERS = In.RECV_HEADERS, In.SEND_HEADERS
RECV_END_STREAM, SEND_END_STREAM = In.RECV_END_STREAM, In.SEND_END_STREAM

TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (S.IDLE, In.RECV_HEADERS): S.OPEN,
    (S.IDLE, In.SEND_HEADERS): S.OPEN,
    (S.OPEN, In.RECV_HEADERS): S.OPEN,
    (S.OPEN, In.SEND_HEADERS): S.OPEN,
    (S.OPEN, In.RECV_END_STREAM): S.HALF_CLOSED_REMOTE,
    (S.OPEN, In.SEND_END_STREAM): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, In.RECV_HEADERS): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, In.RECV_END_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, In.SEND_HEADERS): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, In.SEND_END_STREAM): S.CLOSED,
    **{
        (state, In.RECV_RST_STREAM): S.CLOSED
        for state in (S.OPEN, S.HALF_CLOSED_LOCAL, S.HALF_CLOSED_REMOTE)
    },
    **{
        (state, In.SEND_RST_STREAM): S.CLOSED
        for state in (S.OPEN, S.HALF_CLOSED_LOCAL, S.HALF_CLOSED_REMOTE)
    },
}

_RECEIVING = frozenset({RECV_HEADERS, RECV_END_STREAM, In.RECV_RST_STREAM})


def transition(stream_id: int, state: StreamState, event: StreamInput) -> StreamState:
    """The next state, or the error an illegal transition gets.

    Receiving on a stream whose peer side has ended is a STREAM_CLOSED stream error (§5.1,
    half-closed (remote)); sending on one whose local side has ended is the application's
    mistake.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        pass
    if event in _RECEIVING:
        raise H2StreamError(
            stream_id, f"{event.value} in state {state.value} (§5.1)", ErrorCode.STREAM_CLOSED
        )
    raise LocalProtocolError(f"{event.value} on stream {stream_id} in state {state.value}")


class Stream:
    """One stream's state, windows and body accounting."""

    __slots__ = (
        "expected_length",
        "head_done",
        "id",
        "inbound_window",
        "outbound_window",
        "received_length",
        "response_started",
        "state",
        "unacked",
    )

    def __init__(self, stream_id: int, inbound_window: int, outbound_window: int) -> None:
        self.id = stream_id
        self.state = IDLE
        # Receive side: what the peer may still send (§6.9), what the app has consumed but
        # not yet returned through WINDOW_UPDATE, the body so far and what content-length said.
        self.inbound_window = inbound_window
        self.unacked = 0
        self.received_length = 0
        self.expected_length = -1
        self.head_done = False  # a request / final response head has been received
        # Send side.
        self.outbound_window = outbound_window
        self.response_started = False  # a final (non-1xx) head has been sent

    def move(self, event: StreamInput) -> StreamState:
        state = TRANSITIONS.get((self.state, event))
        if state is None:
            state = transition(self.id, self.state, event)  # raises
        self.state = state
        return state

    def __repr__(self) -> str:
        return f"Stream({self.id}, {self.state.value})"
