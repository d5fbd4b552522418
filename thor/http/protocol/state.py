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


def writer_transition(state: WriterState, action: str) -> WriterState:
    """The state after ``action``; raises OutputStateError for an illegal transition."""
    try:
        return _WRITER_TRANSITIONS[state, action]
    except KeyError:
        raise OutputStateError(f"{action}() called in state {state.name}") from None
