"""ServerConnection: one HTTP/1.1 connection as the server sees it, without IO.

Theory of operation (the shape of h11's ``Connection``, cut for Thor's hot path). The object
owns the :class:`RequestParser`, the :class:`ResponseWriter` of the exchange in progress, and
one joint state for the request and its response (``Cycle``; the table and its rules are in
``state.py``). The IO side:

1. passes what it reads to ``receive_data`` (the peer's EOF to ``receive_eof``); the parsed
   events queue in ``pending``;
2. delivers the pending events in order while ``DELIVERS[state]`` holds the event's class,
   and stops at the first that must wait: a pipelined request waits until the response
   before it is done, so responses leave in request order and nothing is buffered on the
   way out (the IO side may also stop for its own flow control);
3. tells the connection what it delivered (``start_request``, ``end_request``) and what the
   application sends (``send_continue``, ``send_nonfinal``, ``start_response``,
   ``end_response``, ``take_over``), and writes the bytes these return.

Keep-alive: after ``end_response`` the state is ``IDLE`` (the next request may start) or
``CLOSED`` (the IO side closes). An Upgrade request (RFC 9110 §7.8) stops the parser after its
end (``ParserState.HELD``): a 101 makes the bytes read past it the new protocol's
(``take_over`` returns them); any other response lets the parser read them as HTTP again. A
CONNECT request (§9.3.6) stops the parser at its head; a 2xx makes a tunnel the same way.

A call out of order raises ``OutputStateError`` (a missing key in the table). The transitions
are dict lookups inline, not calls: per request the hot path costs a handful of lookups.
"""

from __future__ import annotations

from thor.http.error import OutputStateError
from thor.http.headers import RawHeaderListType
from thor.http.protocol.messages import (
    FRAMING_NONE,
    Body,
    End,
    Event,
    Invalid,
    RequestHead,
)
from thor.http.protocol.request_reader import RequestParser
from thor.http.protocol.state import (
    CYCLE_BY_ACTION,
    CYCLE_TRANSITIONS,
    PARSER_HELD,
    PARSER_IDLE,
    PARSER_TUNNEL,
    Cycle,
    cycle_transition,
)
from thor.http.protocol.writer import ResponseWriter

__all__ = ["CONTINUE", "DELIVERS", "ServerConnection"]

# RFC 9110 §10.1.1 / §15.2.1: the interim response that asks the client for the body.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_IDLE = Cycle.IDLE
_READ = Cycle.READ
_READING = Cycle.READING
_EXPECTING = Cycle.EXPECTING
_SENDING = Cycle.SENDING
_SWITCHING = Cycle.SWITCHING
# The transitions of the hot path, by state (state.CYCLE_BY_ACTION).
_ON_HEAD = CYCLE_BY_ACTION["head"]
_ON_HEAD_BODY = CYCLE_BY_ACTION["head_body"]
_ON_HEAD_EXPECT = CYCLE_BY_ACTION["head_expect"]
_ON_END = CYCLE_BY_ACTION["end"]
_ON_END_BODILESS = CYCLE_BY_ACTION["end_bodiless"]
_ON_START = CYCLE_BY_ACTION["start"]
_ON_START_SWITCH = CYCLE_BY_ACTION["start_switch"]
_ON_DONE = CYCLE_BY_ACTION["done"]
_ON_DONE_CLOSE = CYCLE_BY_ACTION["done_close"]

# Which parsed events may reach the application in each state; the first that may not waits
# (with everything after it). A request head only between exchanges; body and end while a
# request is being read (and the End of a request without body, which was complete at its
# head, whenever it comes: the parser emits it right after the head); a parse error answers
# at once unless a complete request waits for its response (that response goes first: it
# was asked for before the bad bytes came).
_READING_EVENTS = frozenset({Body, End, Invalid})
_END_ONLY = frozenset({End})
DELIVERS: dict[Cycle, frozenset[type]] = {
    Cycle.IDLE: frozenset({RequestHead, End, Invalid}),
    Cycle.EXPECTING: _READING_EVENTS,
    Cycle.READING: _READING_EVENTS,
    Cycle.READ: _END_ONLY,
    Cycle.SENDING_EARLY: _READING_EVENTS,
    Cycle.SENDING: _END_ONLY,
    Cycle.SWITCHING: _END_ONLY,
    Cycle.SWITCHED: frozenset(),
    Cycle.CLOSED: frozenset(),
}


def _illegal(state: Cycle, action: str) -> OutputStateError:
    return OutputStateError(f"{action} in state {state.name}")


class ServerConnection:
    """The sans-IO server side of one HTTP/1.1 connection; see the module docstring."""

    __slots__ = ("head", "parser", "pending", "state", "writer")

    def __init__(
        self,
        *,
        max_request_line: int = 8190,
        max_field_section: int = 32768,
        max_fields: int = 100,
        max_body_size: int | None = None,
    ) -> None:
        self.parser = RequestParser(
            max_request_line=max_request_line,
            max_field_section=max_field_section,
            max_fields=max_fields,
            max_body_size=max_body_size,
        )
        self.pending: list[Event] = []  # parsed, not delivered yet
        self.state = _IDLE
        self.head: RequestHead | None = None  # of the exchange in progress
        self.writer: ResponseWriter | None = None  # of the exchange in progress

    @property
    def is_idle(self) -> bool:
        """Between exchanges, with no partial request read."""
        return self.state is _IDLE and not self.pending and self.parser.state is PARSER_IDLE

    # --- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; returns ``pending`` (what waits for delivery, oldest first)."""
        events = self.parser.feed(data)
        pending = self.pending
        if pending:
            pending.extend(events)
            return pending
        self.pending = events
        return events

    def receive_eof(self) -> list[Event]:
        """The client closed its side: ends or invalidates what was being read."""
        events = self.parser.feed_eof()
        if events:
            self.pending.extend(events)
        return self.pending

    def start_request(self, head: RequestHead) -> ResponseWriter:
        """``head`` is delivered: a new exchange starts; returns the writer of its response."""
        if head.framing is FRAMING_NONE:
            action, table = "head", _ON_HEAD
        elif head.expect_continue:
            action, table = "head_expect", _ON_HEAD_EXPECT
        else:
            # And CONNECT: its "body" is the tunnel, if it gets one.
            action, table = "head_body", _ON_HEAD_BODY
        state = self.state
        try:
            self.state = table[state]
        except KeyError:
            raise _illegal(state, action) from None
        self.head = head
        writer = self.writer = ResponseWriter(head.method, head.version, head.keep_alive)
        return writer

    def end_request(self) -> None:
        """The request's ``End`` is delivered."""
        head = self.head
        if head is None:
            raise _illegal(self.state, "end")
        # A request without body was complete at its head: its End is a formality.
        bodiless = head.framing is FRAMING_NONE
        state = self.state
        try:
            self.state = (_ON_END_BODILESS if bodiless else _ON_END)[state]
        except KeyError:
            raise _illegal(state, "end_bodiless" if bodiless else "end") from None
        self.head = None  # needed no more: an idle connection keeps no request (issue 16)

    # --- output ---------------------------------------------------------------------------

    @property
    def expecting_continue(self) -> bool:
        """The client waits for 100 Continue before it sends the body (RFC 9110 §10.1.1)."""
        return self.state is _EXPECTING

    def send_continue(self) -> bytes:
        """The bytes of 100 Continue; the client may send the body now."""
        self.state = cycle_transition(self.state, "continue")
        return CONTINUE

    def send_nonfinal(self, status: int, phrase: bytes, headers: RawHeaderListType) -> bytes:
        """An interim (1xx) response head, e.g. 103 Early Hints."""
        target = cycle_transition(self.state, "nonfinal")
        writer = self.writer
        assert writer is not None  # every state with a "nonfinal" key has an exchange
        out = writer.nonfinal(status, phrase, headers)
        self.state = target
        return out

    def start_response(
        self, status: int, phrase: bytes, headers: RawHeaderListType, extra: bytes = b""
    ) -> bytes:
        """The final response head. A 101 to a complete Upgrade request, or a 2xx to
        CONNECT, switches protocols: ``take_over`` is then legal."""
        state = self.state
        table = _ON_START
        # A switch: a 101 to a complete Upgrade request (the parser is HELD: it stopped after
        # it), or a 2xx to a CONNECT (the parser is in the TUNNEL). The common READ-and-not-101
        # case is tested first.
        if state is _READ:
            if status == 101 and self.parser.state is PARSER_HELD:
                table = _ON_START_SWITCH
        elif state is _READING and 200 <= status < 300 and self.parser.state is PARSER_TUNNEL:
            table = _ON_START_SWITCH
        try:
            target = table[state]
        except KeyError:
            raise _illegal(state, "start" if table is _ON_START else "start_switch") from None
        writer = self.writer
        assert writer is not None
        if state is not _READ:
            # Answering before the whole request arrived: what is left of it would be read
            # as the next request, so the connection ends after this response.
            writer.keep_alive = False
        head = writer.start(status, phrase, headers, extra)
        self.state = target
        return head

    def end_response(self, trailers: RawHeaderListType, close: bool = False) -> bytes:
        """The end of the response; afterwards ``state`` is IDLE (keep-alive) or CLOSED."""
        writer = self.writer
        if writer is None:
            raise _illegal(self.state, "done")
        tail = writer.end(trailers)
        state = self.state
        if (state is _SENDING and writer.keep_alive and not close) or state is _SWITCHING:
            action, table = "done", _ON_DONE
        else:
            action, table = "done_close", _ON_DONE_CLOSE
        try:
            self.state = target = table[state]
        except KeyError:
            raise _illegal(state, action) from None
        # The writer is done; the head stays until the request's End is delivered (a
        # request without body may have it still to deliver).
        self.writer = None
        if self.parser.state is PARSER_HELD and target is _IDLE:
            # RFC 9110 §7.8: the server did not switch; what followed is HTTP.
            self.pending.extend(self.parser.resume())
        return tail

    def take_over(self) -> bytes:
        """Hand the connection to another protocol after a switching response head
        (see ``start_response``); returns the bytes read past the request."""
        state = self.state
        try:
            self.state = CYCLE_TRANSITIONS[state, "take_over"]
        except KeyError:
            raise _illegal(state, "take_over") from None
        self.pending = []  # only the switched request's own End can be there
        self.writer = None
        return self.parser.take_leftover()

    def close(self) -> None:
        """No more HTTP on this connection (an error, a timeout, the server closing)."""
        self.state = Cycle.CLOSED
        self.parser.close()
