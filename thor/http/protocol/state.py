"""Parser and writer states, and the writers' transition table.

Rules (h11 style: states are data, an illegal transition is a missing key):

Parsers (``ParserState``)::

    IDLE   --bytes of a head arrive-->        HEAD
    HEAD   --head complete, body follows-->   BODY
    HEAD   --head complete, no body-->        IDLE (keep-alive) / DONE (not keep-alive)
    BODY   --End-->                           IDLE (keep-alive) / DONE (not keep-alive)
    HEAD   --CONNECT / 101 / 2xx-to-CONNECT-->TUNNEL
    BODY   --End of an Upgrade request-->     HELD
    HELD   --resume()-->                      IDLE (keep-alive) / DONE (not keep-alive)
    any    --Invalid-->                       DONE
    any    --feed_eof-->                      DONE

In ``DONE``, ``TUNNEL`` and ``HELD`` the parser ignores further input (in ``TUNNEL`` and
``HELD`` it keeps it for ``take_leftover()``; ``resume()`` parses what ``HELD`` kept). The
parsers move between these states by installing the reader for the next part of the message
(``reader.py``); ``state`` is what they report.

Writers (``WriterState``)::

    IDLE --nonfinal--> IDLE --start--> BODY --body--> BODY --end--> DONE

The server connection (``Cycle``, one joint state for a request and its response; see
``server_connection.py``). The request side reads Expect (RFC 9110 §10.1.1), the response
side may switch protocols (RFC 9110 §7.8, §9.3.6)::

    IDLE      --head (no body)--> READ        --start--> SENDING --done--> IDLE (keep-alive)
    IDLE      --head_body-->      READING     --end-->   READ             --done_close--> CLOSED
    READ / SENDING / IDLE / SWITCHING --end_bodiless--> the same (a request without body is
              complete at its head; its End may come after the response started or ended)
    IDLE      --head_expect-->    EXPECTING   --continue / nonfinal--> READING
    EXPECTING / READING --start--> SENDING_EARLY --end--> SENDING
    SENDING_EARLY --done_close--> CLOSED      (the rest of the request is unread: close)
    READ (an Upgrade request) / READING (CONNECT) --start_switch--> SWITCHING
    SWITCHING --take_over--> SWITCHED          SWITCHING --done--> CLOSED
    any       --close-->          CLOSED
"""

from __future__ import annotations

import enum

from thor.http.error import OutputStateError

__all__ = [
    "CYCLE_BY_ACTION",
    "CYCLE_TRANSITIONS",
    "WRITER_BY_ACTION",
    "Cycle",
    "ParserState",
    "WriterState",
    "cycle_transition",
    "writer_transition",
]


class ParserState(enum.Enum):
    IDLE = "idle"  # between messages
    HEAD = "head"  # receiving a head
    BODY = "body"  # receiving a body (or trailers)
    DONE = "done"  # finished for good: not keep-alive, or after Invalid
    TUNNEL = "tunnel"  # after a CONNECT / 101 head: the bytes are not HTTP any more
    HELD = "held"  # after an Upgrade request: HTTP again or not, the response decides


class WriterState(enum.Enum):
    IDLE = "idle"  # nothing but interim responses written
    BODY = "body"  # head written, body may follow
    DONE = "done"  # message complete


# The members as module constants for the hot paths (see FRAMING_NONE in messages.py).
PARSER_IDLE = ParserState.IDLE
PARSER_HEAD = ParserState.HEAD
PARSER_BODY = ParserState.BODY
PARSER_DONE = ParserState.DONE
PARSER_TUNNEL = ParserState.TUNNEL
PARSER_HELD = ParserState.HELD
WRITER_IDLE = WriterState.IDLE
WRITER_BODY = WriterState.BODY
WRITER_DONE = WriterState.DONE

_WRITER_TRANSITIONS: dict[tuple[WriterState, str], WriterState] = {
    (WriterState.IDLE, "nonfinal"): WriterState.IDLE,
    (WriterState.IDLE, "start"): WriterState.BODY,
    (WriterState.BODY, "body"): WriterState.BODY,
    (WriterState.BODY, "end"): WriterState.DONE,
}


# The same table keyed by action. Each action is legal from exactly one state, so a transition
# is one lookup by a str key (hashing an Enum member calls Enum.__hash__, a Python function).
WRITER_BY_ACTION: dict[str, tuple[WriterState, WriterState]] = {
    action: (source, target) for (source, action), target in _WRITER_TRANSITIONS.items()
}
assert len(WRITER_BY_ACTION) == len(_WRITER_TRANSITIONS), "an action is legal from one state only"


def writer_transition(state: WriterState, action: str) -> WriterState:
    """The state after ``action``; raises OutputStateError for an illegal transition."""
    source, target = WRITER_BY_ACTION[action]
    if state is not source:
        raise OutputStateError(f"{action}() called in state {state.name}")
    return target


class Cycle(int, enum.Enum):
    """Where a server connection is in its request/response cycle (table above).

    The ``int`` mixin gives the members C-level hashing, so a transition is one dict lookup
    without a Python call (``Enum.__hash__`` is a Python function).
    """

    IDLE = 0  # no exchange: the next request head may start one
    EXPECTING = 1  # a body is to come and the client waits for 100 Continue
    READING = 2  # the request body is arriving; no final response yet
    READ = 3  # the request is complete; no final response yet
    SENDING_EARLY = 4  # the final response started before the request was complete
    SENDING = 5  # the final response started; the request is complete
    SWITCHING = 6  # a 101 to an Upgrade request / a 2xx to CONNECT is out: take over, or end
    SWITCHED = 7  # the connection belongs to another protocol now
    CLOSED = 8  # no more HTTP: the response ended the connection, or the input was invalid


_REQUEST_INCOMPLETE = (Cycle.EXPECTING, Cycle.READING)
CYCLE_TRANSITIONS: dict[tuple[Cycle, str], Cycle] = {
    (Cycle.IDLE, "head"): Cycle.READ,
    (Cycle.IDLE, "head_body"): Cycle.READING,
    (Cycle.IDLE, "head_expect"): Cycle.EXPECTING,
    # RFC 9110 §10.1.1: 100 Continue (or any interim response) tells the client to send.
    (Cycle.EXPECTING, "continue"): Cycle.READING,
    (Cycle.EXPECTING, "nonfinal"): Cycle.READING,
    (Cycle.READING, "nonfinal"): Cycle.READING,
    (Cycle.READ, "nonfinal"): Cycle.READ,
    **{(s, "end"): Cycle.READ for s in _REQUEST_INCOMPLETE},
    **{(s, "start"): Cycle.SENDING_EARLY for s in _REQUEST_INCOMPLETE},
    (Cycle.READ, "start"): Cycle.SENDING,
    (Cycle.SENDING_EARLY, "end"): Cycle.SENDING,
    # A request without a body is complete at its head; its End only tells the application
    # so, and may come after the response started, ended (IDLE) or switched.
    **{(s, "end_bodiless"): s for s in (Cycle.READ, Cycle.SENDING, Cycle.IDLE, Cycle.SWITCHING)},
    (Cycle.SENDING, "done"): Cycle.IDLE,
    (Cycle.SENDING, "done_close"): Cycle.CLOSED,
    (Cycle.SENDING_EARLY, "done_close"): Cycle.CLOSED,
    # RFC 9110 §7.8: 101 answers a complete Upgrade request; §9.3.6: a 2xx to CONNECT makes a
    # tunnel at once (its request has no end: what follows the head is the tunnel's).
    (Cycle.READ, "start_switch"): Cycle.SWITCHING,
    (Cycle.READING, "start_switch"): Cycle.SWITCHING,
    (Cycle.SWITCHING, "take_over"): Cycle.SWITCHED,
    (Cycle.SWITCHING, "done"): Cycle.CLOSED,  # nobody took the connection: it ends
    **{(s, "close"): Cycle.CLOSED for s in Cycle},
}


# The same table by action, then by state: a transition on the hot path is a lookup in a
# module constant (``CYCLE_BY_ACTION["start"]``, bound once) by the state, with no tuple to
# build, hash and compare per lookup (callgrind: ~250 instructions less each, four a request).
CYCLE_BY_ACTION: dict[str, dict[Cycle, Cycle]] = {}
for (_state, _action), _target in CYCLE_TRANSITIONS.items():
    CYCLE_BY_ACTION.setdefault(_action, {})[_state] = _target
del _state, _action, _target


def cycle_transition(state: Cycle, action: str) -> Cycle:
    """The state after ``action``; raises OutputStateError for an illegal transition."""
    target = CYCLE_TRANSITIONS.get((state, action))
    if target is None:
        raise OutputStateError(f"{action} in state {state.name}")
    return target
