"""Connection states and their transition table (RFC 6455 §7: the closing handshake).

Rules (h11 style: states are data, an illegal transition is a missing key)::

    OPEN            --send_close-->     CLOSING          we sent a close, wait for the peer's
    OPEN            --receive_close-->  REMOTE_CLOSING   the peer closed; answer with a close
    CLOSING         --receive_close-->  CLOSED           §7.1.4: closing handshake complete
    REMOTE_CLOSING  --send_close-->     CLOSED
    any             --fail-->           CLOSED           §7.1.7: we failed the connection
    any             --lost-->           CLOSED           the transport ended (1006)

The handshake is not a state here: a connection object exists once it has succeeded.
Data frames may be sent in OPEN and REMOTE_CLOSING (§5.5.1 lets an endpoint finish its
message before answering a close); after our own close nothing more is sent.
"""

from __future__ import annotations

import enum

from thor.websocket.protocol.errors import WebSocketStateError

__all__ = ["ConnectionState", "transition"]


class ConnectionState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # we sent a close frame
    REMOTE_CLOSING = "remote_closing"  # the peer sent one, we have not answered yet
    CLOSED = "closed"


# Module constants for the hot paths (EnumType.__getattr__ is a Python-level hook in 3.11).
OPEN = ConnectionState.OPEN
CLOSING = ConnectionState.CLOSING
REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
CLOSED = ConnectionState.CLOSED

_TRANSITIONS: dict[tuple[ConnectionState, str], ConnectionState] = {
    (OPEN, "send_close"): CLOSING,
    (OPEN, "receive_close"): REMOTE_CLOSING,
    (CLOSING, "receive_close"): CLOSED,
    (REMOTE_CLOSING, "send_close"): CLOSED,
    **{(state, "fail"): CLOSED for state in ConnectionState},
    **{(state, "lost"): CLOSED for state in ConnectionState},
}

# Where sending a data or ping/pong frame is allowed.
CAN_SEND = frozenset({OPEN, REMOTE_CLOSING})


def transition(state: ConnectionState, action: str) -> ConnectionState:
    """The state after ``action``; raises WebSocketStateError for an illegal one."""
    try:
        return _TRANSITIONS[state, action]
    except KeyError:
        raise WebSocketStateError(f"{action} in state {state.name}") from None
