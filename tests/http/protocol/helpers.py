"""Feeding helpers: every case is fed whole, one byte at a time and split at every offset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from thor.http.protocol import Body, Event, Invalid, RequestParser, ResponseParser

Parser = RequestParser | ResponseParser
Factory = Callable[[], Parser]


def normalize(events: Sequence[Event]) -> list[Any]:
    """Merge adjacent Body events; an Invalid compares by error class."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, Body):
            if out and isinstance(out[-1], Body):
                out[-1] = Body(out[-1].data + event.data)
            elif event.data:
                out.append(event)
        elif isinstance(event, Invalid):
            out.append(("Invalid", type(event.error)))
        else:
            out.append(event)
    return out


def run(factory: Factory, pieces: Sequence[bytes], eof: bool) -> list[Event]:
    parser = factory()
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    if eof:
        events += parser.feed_eof()
    invalid = [i for i, e in enumerate(events) if isinstance(e, Invalid)]
    assert invalid in ([], [len(events) - 1]), "Invalid must be the last event"
    return events


def splits(data: bytes) -> list[list[bytes]]:
    """Whole, byte by byte, and in two pieces at every offset (sampled for big inputs)."""
    out = [[data], [data[i : i + 1] for i in range(len(data))]]
    step = 1 if len(data) <= 600 else len(data) // 97
    out += [[data[:i], data[i:]] for i in range(1, len(data), step)]
    return out


def check(factory: Factory, data: bytes, *, eof: bool = False) -> list[Event]:
    """Events for ``data``, asserting that every way of splitting it gives the same ones."""
    whole = run(factory, [data], eof)
    expected = normalize(whole)
    for pieces in splits(data)[1:]:
        got = normalize(run(factory, pieces, eof))
        assert got == expected, f"split {[len(p) for p in pieces][:4]} differs"
    return whole


def error_of(events: Sequence[Event]) -> Any:
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, Invalid), f"expected Invalid, got {last!r}"
    return last.error


def response_factory(*methods: bytes, **kw: Any) -> Factory:
    def make() -> ResponseParser:
        parser = ResponseParser(**kw)
        for method in methods or (b"GET",):
            parser.expect(method)
        return parser

    return make
