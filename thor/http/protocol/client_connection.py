"""ClientConnection: one HTTP/1.1 connection seen from the client, sans-IO.

It owns the ``RequestWriter`` of the request in flight and the ``ResponseParser`` of the
connection, and one joint state for both directions. The IO layer (``thor.http.client``)
calls it to frame what it sends, feeds it what it reads, and only moves bytes, arms timers
(the read timeout, the wait for 100 Continue) and emits events. One request at a time: no
pipelining (as in Thor 0.17).

Rules (h11 style: states are data; an action missing from the table raises
``OutputStateError``, a local error, before anything is written)::

    IDLE        --start (body follows)-->            SENDING
    IDLE        --start (Expect: 100-continue)-->    WAITING_100   RFC 9110 §10.1.1
    IDLE        --start_bodiless-->                  AWAITING
    WAITING_100 --continue (100, or the caller's timeout)--> SENDING
    SENDING     --end-->                             AWAITING
    EARLY       --end-->                             RECEIVING
    SENDING     --final response head-->             EARLY        (the server answered early)
    WAITING_100 --final response head-->             REFUSED      (the body is never sent)
    AWAITING    --final response head-->             RECEIVING
    AWAITING    --101 / 2xx to CONNECT, offered-->   SWITCHED     RFC 9110 §7.8, §9.3.6
    RECEIVING   --response end, both keep-alive-->   IDLE         RFC 9112 §9.3
    RECEIVING / EARLY / REFUSED --response end-->    CLOSED
    IDLE        --bytes from the server-->           CLOSED       RFC 9112 §9.3
    any         --close (EOF, Invalid, abort)-->     CLOSED

The response side is read from the parser's events as they are fed: interim (1xx) heads
change nothing except that a 100 ends WAITING_100. A 101 or a 2xx to CONNECT the request did
not ask for (no Upgrade offered) is a remote protocol error: the state becomes CLOSED and an
``Invalid`` event replaces the head. In SWITCHED the parser keeps the bytes read past the
response head; ``take_leftover()`` returns them (they belong to the new protocol).

A connection is reusable exactly when it is back in IDLE: both messages complete, neither
side asked to close, and nothing left over in the parser (RFC 9112 §9.3).
"""

from __future__ import annotations

import enum

from thor.http import error
from thor.http.headers import RawHeaderListType
from thor.http.protocol.messages import (
    FRAMING_NONE,
    FRAMING_TUNNEL,
    End,
    Event,
    Invalid,
    ResponseHead,
)
from thor.http.protocol.response_reader import ResponseParser
from thor.http.protocol.state import PARSER_IDLE
from thor.http.protocol.writer import RequestWriter
from thor.memo import Memo

__all__ = ["ClientConnection", "ClientState"]


class ClientState(enum.Enum):
    """The joint state of one client connection (see the module docstring)."""

    IDLE = "idle"  # no request in flight: one may start
    SENDING = "sending"  # request head sent, body going; no final response yet
    WAITING_100 = "waiting_100"  # head sent with Expect: 100-continue; body held back
    AWAITING = "awaiting"  # request complete; no final response yet
    EARLY = "early"  # final response started before the request was complete
    REFUSED = "refused"  # final response instead of 100: the body is never sent
    RECEIVING = "receiving"  # request complete; final response being read
    SWITCHED = "switched"  # 101 / 2xx to CONNECT: the bytes are another protocol's
    CLOSED = "closed"  # carries no more requests

    # action -> next state, filled from _TRANSITIONS below: a transition is one attribute
    # read and one lookup by a str key (hashing an Enum member calls a Python function).
    next: dict[str, ClientState]


_S = ClientState
_TRANSITIONS: dict[tuple[ClientState, str], ClientState] = {
    (_S.IDLE, "start"): _S.SENDING,
    (_S.IDLE, "start_expect"): _S.WAITING_100,
    (_S.IDLE, "start_bodiless"): _S.AWAITING,
    (_S.WAITING_100, "continue"): _S.SENDING,
    (_S.SENDING, "end"): _S.AWAITING,
    (_S.EARLY, "end"): _S.RECEIVING,
    (_S.SENDING, "final"): _S.EARLY,
    (_S.WAITING_100, "final"): _S.REFUSED,
    (_S.AWAITING, "final"): _S.RECEIVING,
    (_S.AWAITING, "switch"): _S.SWITCHED,
    (_S.RECEIVING, "done"): _S.IDLE,
    (_S.RECEIVING, "done_close"): _S.CLOSED,
    (_S.EARLY, "done_close"): _S.CLOSED,
    (_S.REFUSED, "done_close"): _S.CLOSED,
    **{(state, "close"): _S.CLOSED for state in ClientState},
}
for _state in ClientState:
    _state.next = {}
for (_source, _action), _target in _TRANSITIONS.items():
    _source.next[_action] = _target

# The members as module constants for the hot paths (see FRAMING_NONE in messages.py).
CLIENT_IDLE = ClientState.IDLE
CLIENT_SENDING = ClientState.SENDING
CLIENT_WAITING_100 = ClientState.WAITING_100
CLIENT_AWAITING = ClientState.AWAITING
CLIENT_EARLY = ClientState.EARLY
CLIENT_REFUSED = ClientState.REFUSED
CLIENT_RECEIVING = ClientState.RECEIVING
CLIENT_SWITCHED = ClientState.SWITCHED
CLIENT_CLOSED = ClientState.CLOSED

# Requests without a body, framed: (method, target, *fields) -> (bytes, writer); see
# start_bodiless. The writer is one of two shared ones in the state the request's own
# writer reached (complete; keep-alive, or "Connection: close"), never written to again.
_BODILESS_MAX = 512
_BODILESS: Memo[tuple[bytes, ...] | tuple[object, ...], tuple[bytes, RequestWriter]] = Memo(
    _BODILESS_MAX
)
_BODILESS_SIZE = 2048
_SENT_KEEP = RequestWriter()
_SENT_KEEP.start(b"GET", b"/", [], has_body=False)
_SENT_KEEP.end([])
_SENT_CLOSE = RequestWriter()
_SENT_CLOSE.start(b"GET", b"/", [(b"Connection", b"close")], has_body=False)
_SENT_CLOSE.end([])


def _illegal(state: ClientState, action: str) -> error.HttpError:
    return error.OutputStateError(f"{action} is not possible in state {state.name}")


class ClientConnection:
    """Sans-IO HTTP/1.1 client connection: frames requests, reads responses, one state."""

    __slots__ = ("methods", "offered_switch", "parser", "received", "state", "writer")

    def __init__(self, parser: ResponseParser | None = None) -> None:
        self.state = CLIENT_IDLE
        self.parser = parser if parser is not None else ResponseParser()
        self.methods = self.parser.methods  # what the parser frames responses by
        self.writer = _SENT_KEEP  # replaced per request
        self.offered_switch = False  # the request in flight asked for Upgrade, or is CONNECT
        self.received = False  # a byte of the response to the request in flight arrived

    def __repr__(self) -> str:
        return f"<ClientConnection {self.state.name}>"

    # --- sending ---------------------------------------------------------------------------

    def start_request(
        self,
        method: bytes,
        target: bytes,
        headers: RawHeaderListType,
        *,
        has_body: bool = True,
        expect_continue: bool = False,
        upgrade: bool = False,
    ) -> bytes:
        """The head of a request whose body follows (``send_body``, then ``end_request``);
        ``has_body`` False: only Content-Length can give it one (``end_request`` follows)."""
        state = self.state
        if state is not CLIENT_IDLE:
            raise _illegal(state, "start")
        writer = self.writer = RequestWriter()
        data = writer.start(method, target, headers, has_body=has_body)
        self.methods.append(method)  # RFC 9112 §6.3: the response is framed by the method
        self.offered_switch = upgrade or method == b"CONNECT"
        self.received = False
        # RFC 9110 §10.1.1: with the expectation, hold the body until 100 (or a final
        # response, or the caller's timeout); a request without a body has nothing to hold.
        if expect_continue and writer.framing is not FRAMING_NONE:
            self.state = CLIENT_WAITING_100
        else:
            self.state = CLIENT_SENDING
        return data

    def start_bodiless(
        self,
        method: bytes,
        target: bytes,
        headers: RawHeaderListType,
        trailers: RawHeaderListType = [],  # noqa: B006 - never mutated
        upgrade: bool = False,
    ) -> bytes:
        """A whole request without a body (head and end at once).

        Its bytes depend only on the method, the target and the fields, so they are
        remembered: a proxy or a fan-out sends the same few requests again and again, and
        framing them is most of the cost of sending.
        """
        state = self.state
        if state is not CLIENT_IDLE:
            raise _illegal(state, "start_bodiless")
        key = (method, target, *headers)
        cached = _BODILESS.get(key)
        if cached is None:
            writer = self.writer = RequestWriter()
            data = writer.start(method, target, headers, has_body=False)
            data += writer.end(trailers)
            # Only complete requests, and only small ones: bounded memory, and requests
            # with large fields (cookies, tokens) are rarely repeated anyway.
            if writer.complete and len(data) <= _BODILESS_SIZE:
                _BODILESS.put(key, (data, _SENT_KEEP if writer.keep_alive else _SENT_CLOSE))
        else:
            data, self.writer = cached
        self.methods.append(method)  # RFC 9112 §6.3: the response is framed by the method
        self.offered_switch = upgrade or method == b"CONNECT"
        self.received = False
        self.state = CLIENT_AWAITING
        return data

    def send_body(self, chunk: bytes) -> bytes:
        """Frame ``chunk`` of the request body (SENDING, or EARLY: the server may still read)."""
        state = self.state
        if state is not CLIENT_SENDING and state is not CLIENT_EARLY:
            raise _illegal(state, "body")
        return self.writer.body(chunk)

    def end_request(self, trailers: RawHeaderListType = []) -> bytes:  # noqa: B006
        """End the request body (the last chunk and ``trailers`` when chunked)."""
        try:
            target = self.state.next["end"]
        except KeyError:
            raise _illegal(self.state, "end") from None
        data = self.writer.end(trailers)
        self.state = target
        return data

    def continue_body(self) -> None:
        """Stop waiting for 100 Continue: the caller waited long enough (RFC 9110 §10.1.1)."""
        try:
            self.state = self.state.next["continue"]
        except KeyError:
            raise _illegal(self.state, "continue") from None

    @property
    def body_held(self) -> bool:
        """The request body must not be sent yet (waiting for 100) or ever (refused)."""
        state = self.state
        return state is CLIENT_WAITING_100 or state is CLIENT_REFUSED

    # --- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data`` from the server; the events it completes, the state moved by them."""
        if self.state is CLIENT_IDLE:
            # RFC 9112 §9.3: no request in flight, so these bytes cannot be a response.
            self.state = CLIENT_CLOSED
        events = self.parser.feed(data)
        self.received = True
        if not events:
            return events
        # One request in flight, so one read holds at most one final head (first, unless
        # interim heads come before it), at most one End, and Invalid only last: the usual
        # read is settled by its first and last events, without a loop or a call.
        first = events[0]
        if first.__class__ is ResponseHead:
            if first.status < 200 or first.framing is FRAMING_TUNNEL:
                self._advance(events)  # interim heads, or a switch: every event counts
                return events
            try:
                self.state = self.state.next["final"]
            except KeyError:
                self._unexpected(events, first, "a response the client did not expect")
                return events
        last = events[-1].__class__
        if last is End:  # _on_end(), inline
            writer = self.writer
            if (
                self.state is CLIENT_RECEIVING
                and self.parser.state is PARSER_IDLE
                and writer.keep_alive
                and writer.complete
            ):
                self.state = CLIENT_IDLE
            else:
                self.state = self.state.next["done_close"]
        elif last is Invalid:
            self.state = CLIENT_CLOSED
        return events

    def _advance(self, events: list[Event]) -> None:
        """Move the state by every event of ``events`` (a read with interim heads)."""
        for event in events:
            kind = event.__class__
            if kind is ResponseHead:
                if event.status < 200 or event.framing is FRAMING_TUNNEL:  # type: ignore[union-attr]
                    self._on_special_head(events, event)  # type: ignore[arg-type]
                    continue
                try:
                    self.state = self.state.next["final"]
                except KeyError:
                    self._unexpected(events, event, "a response the client did not expect")  # type: ignore[arg-type]
            elif kind is End:
                self._on_end()
            elif kind is Invalid:
                self.state = CLIENT_CLOSED

    def _on_end(self) -> None:
        # RFC 9112 §9.3: keep the connection only if both messages are complete, neither
        # side closes, and nothing of a next response is buffered.
        writer = self.writer
        if (
            self.state is CLIENT_RECEIVING
            and self.parser.state is PARSER_IDLE
            and writer.keep_alive
            and writer.complete
        ):
            self.state = CLIENT_IDLE
        else:
            self.state = self.state.next["done_close"]

    def receive_eof(self) -> list[Event]:
        """The server closed its side: the events that completes (an end, or Invalid). The
        connection carries nothing more, whatever they are (a switched one stays SWITCHED)."""
        events = self.parser.feed_eof()
        if self.state is not CLIENT_SWITCHED:
            self.state = CLIENT_CLOSED
        return events

    def close(self) -> None:
        """The connection is closed (or abandoned): it carries nothing more."""
        self.state = CLIENT_CLOSED

    def take_leftover(self) -> bytes:
        """In SWITCHED: the bytes read past the response head (they are the new protocol's)."""
        return self.parser.take_leftover()

    def _on_special_head(self, events: list[Event], head: ResponseHead) -> None:
        """An interim head (1xx but 101), or one that switches protocols (101, 2xx CONNECT)."""
        status = head.status
        state = self.state
        if head.framing is not FRAMING_TUNNEL:
            if status == 100 and state is CLIENT_WAITING_100:
                self.state = CLIENT_SENDING
            return
        if self.offered_switch and state is CLIENT_AWAITING:
            self.state = CLIENT_SWITCHED
            return
        # A switch nobody asked for (or before the request was complete): the bytes that
        # follow cannot be read as HTTP, and cannot be handed to anyone.
        if status == 101:
            self._unexpected(events, head, "101 Switching Protocols to a plain request")
        else:
            self._unexpected(events, head, "the server switched protocols")

    def _unexpected(self, events: list[Event], head: ResponseHead, what: str) -> None:
        """``head`` is a remote protocol error: it and what follows become one Invalid."""
        self.state = CLIENT_CLOSED
        i = next(j for j, event in enumerate(events) if event is head)  # (heads compare by value)
        events[i] = Invalid(error.UpstreamError(what))
        del events[i + 1 :]
