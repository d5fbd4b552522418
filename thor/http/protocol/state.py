"""Parser and writer states, and the writers' transition table.

Rules (h11 style: states are data, an illegal transition is a missing key):

Parsers (``ParserState``)::

    IDLE   --bytes of a head arrive-->        HEAD
    HEAD   --head complete, body follows-->   BODY
    HEAD   --head complete, no body-->        IDLE (keep-alive) / DONE (not keep-alive)
    BODY   --End-->                           IDLE (keep-alive) / DONE (not keep-alive)
    HEAD   --CONNECT / 101 / 2xx-to-CONNECT-->TUNNEL
    any    --Invalid-->                       DONE
    any    --feed_eof-->                      DONE

In ``DONE`` and ``TUNNEL`` the parser ignores further input (in ``TUNNEL`` it keeps it for
``take_leftover()``). The parsers move between these states by installing the reader for the
next part of the message (``reader.py``); ``state`` is what they report.

Writers (``WriterState``)::

    IDLE --nonfinal--> IDLE --start--> BODY --body--> BODY --end--> DONE
"""

from __future__ import annotations

import enum

from thor.http.error import OutputStateError

__all__ = ["ParserState", "WriterState", "writer_transition"]


class ParserState(enum.Enum):
    IDLE = "idle"  # between messages
    HEAD = "head"  # receiving a head
    BODY = "body"  # receiving a body (or trailers)
    DONE = "done"  # finished for good: not keep-alive, or after Invalid
    TUNNEL = "tunnel"  # after a CONNECT / 101 head: the bytes are not HTTP any more


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
_BY_ACTION: dict[str, tuple[WriterState, WriterState]] = {
    action: (source, target) for (source, action), target in _WRITER_TRANSITIONS.items()
}
assert len(_BY_ACTION) == len(_WRITER_TRANSITIONS), "an action is legal from one state only"


def writer_transition(state: WriterState, action: str) -> WriterState:
    """The state after ``action``; raises OutputStateError for an illegal transition."""
    source, target = _BY_ACTION[action]
    if state is not source:
        raise OutputStateError(f"{action}() called in state {state.name}")
    return target
