"""The hot-path shortcuts give exactly what the general code gives (see docs/http-protocol.md)."""

from __future__ import annotations

import dataclasses
from http import HTTPStatus

import pytest

from thor.http import error
from thor.http.protocol import (
    Body,
    End,
    Event,
    Framing,
    RequestHead,
    RequestParser,
    ResponseWriter,
    WriterState,
    messages,
    state,
    writer,
)

from .helpers import error_of, normalize

# --- events built by twin-class assignment -------------------------------------------------


def test_built_events_equal_constructed_ones() -> None:
    args = (b"GET", b"/", b"1.1", [(b"Host", b"a")], Framing.NONE, None, True, False)
    built = messages.new_request_head(*args)
    made = RequestHead(*args)
    assert type(built) is RequestHead
    assert built == made
    assert repr(built) == repr(made)
    assert messages.new_body(b"x") == Body(b"x")
    assert hash(messages.new_body(b"x")) == hash(Body(b"x"))
    assert messages.new_end([]) == End([])
    assert dataclasses.replace(built, target=b"/x").target == b"/x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.method = b"POST"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        messages.new_end([]).trailers = []  # type: ignore[misc]


@pytest.mark.parametrize(
    ("twin", "frozen"),
    [
        (messages._WritableRequestHead, RequestHead),
        (messages._WritableBody, Body),
        (messages._WritableEnd, End),
    ],
)
def test_twin_classes_have_the_same_slots(twin: type, frozen: type) -> None:
    # __class__ assignment needs the same layout: the same slots in the same order.
    assert vars(twin)["__slots__"] == vars(frozen)["__slots__"]
    assert [f.name for f in dataclasses.fields(frozen)] == list(vars(frozen)["__slots__"])


# --- request parser: whole-head fast path against the line-by-line path --------------------

HEADS = [
    b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
    b"GET /a?b HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nhOsT:  a  \r\nX:\r\nY: \t v \t\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    b"1\r\nx\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n",
    b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /#f HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n obs-fold\r\n\r\n",
]


def feed(parser: RequestParser, pieces: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events


@pytest.mark.parametrize("data", HEADS)
def test_fast_path_agrees_with_line_by_line_path(data: bytes) -> None:
    # Whole: the head is in the caller's bytes (fast path). Split after one byte: the head is
    # completed in the parser's bytearray, which only the general path reads.
    whole = feed(RequestParser(), [data])
    split = feed(RequestParser(), [data[:1], data[1:]])
    assert normalize(whole) == normalize(split)


@pytest.mark.parametrize(
    ("kw", "data", "expected"),
    [
        ({"max_request_line": 5}, b"GET /abc HTTP/1.1\r\nHost: a\r\n\r\n", error.HttpError),
        ({"max_field_section": 10}, b"GET / HTTP/1.1\r\nHost: abcdefgh\r\n\r\n", error.HttpError),
        ({"max_fields": 1}, b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n", error.TooManyFieldsError),
    ],
)
def test_fast_path_keeps_the_limits(kw: dict[str, int], data: bytes, expected: type) -> None:
    whole = error_of(RequestParser(**kw).feed(data))
    split = error_of(feed(RequestParser(**kw), [data[:1], data[1:]]))
    assert isinstance(whole, expected)
    assert type(whole) is type(split)


def test_valid_host_memo_does_not_admit_a_bad_host() -> None:
    parser = RequestParser()
    ok = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"
    assert len(parser.feed(ok + ok)) == 4
    assert isinstance(
        error_of(parser.feed(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")), error.HttpError
    )


# --- writers ---------------------------------------------------------------------------------


def test_transition_table_by_action_is_the_table() -> None:
    for (source, action), target in state._WRITER_TRANSITIONS.items():
        assert state.writer_transition(source, action) is target
        for other in WriterState:
            if other is not source:
                with pytest.raises(error.OutputStateError):
                    state.writer_transition(other, action)


def head_of(status: int, phrase: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    return ResponseWriter(b"GET", b"1.1", True).start(status, phrase, headers)


def test_status_line_cache() -> None:
    assert head_of(200, b"OK", []).startswith(b"HTTP/1.1 200 OK\r\n")
    assert head_of(HTTPStatus.OK, b"OK", []).startswith(b"HTTP/1.1 200 OK\r\n")
    assert head_of(200, b"Fine", []).startswith(b"HTTP/1.1 200 Fine\r\n")
    assert head_of(299, b"", []).startswith(b"HTTP/1.1 299 \r\n")
    with pytest.raises(error.OutputSyntaxError):
        head_of(200, b"O\r\nK", [])
    with pytest.raises(error.OutputSyntaxError):
        head_of(200, "OK", [])  # type: ignore[arg-type]


def test_valid_names_memo_is_bounded_and_still_checks() -> None:
    for i in range(writer._VALID_NAMES_MAX + 10):
        head_of(200, b"OK", [(b"X-%d" % i, b"v")])
        assert len(writer._VALID_NAMES) <= writer._VALID_NAMES_MAX
    head_of(200, b"OK", [(b"X-1", b"v")])  # remembered: the value is still checked
    with pytest.raises(error.OutputSyntaxError):
        head_of(200, b"OK", [(b"X-1", b"v\r\nInjected: 1")])
    with pytest.raises(error.OutputSyntaxError):
        head_of(200, b"OK", [(b"X 1", b"v")])


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([(b"Content-Length", b"2"), (b"A", b"b")], b"A: b\r\n"),
        ([(b"A", b"b"), (b"content-length", b"2"), (b"C", b"d")], b"A: b\r\nC: d\r\n"),
        (
            [(b"A", b"b"), (b"Content-Length", b"2"), (b"Connection", b"c"), (b"C", b"d")],
            b"A: b\r\n",
        ),
    ],
)
def test_content_length_taken_out_of_the_fields(
    headers: list[tuple[bytes, bytes]], kept: bytes
) -> None:
    expected = b"HTTP/1.1 200 OK\r\n" + kept + b"Content-Length: 2\r\n\r\n"
    assert head_of(200, b"OK", headers) == expected


def test_pairs_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(ValueError, match="zip"):
        head_of(200, b"OK", [(b"A", b"b"), (b"C", b"d", b"e")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unpack"):
        head_of(200, b"OK", [(b"A", b"b", b"c")])  # type: ignore[list-item]


def test_remembered_fields_are_framed_per_message() -> None:
    fields = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")]
    for _ in range(2):  # the second time from the memo: the same heads
        get11 = ResponseWriter(b"GET", b"1.1", True)
        assert get11.start(200, b"OK", list(fields)) == (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        )
        assert get11.framing is Framing.LENGTH
        with pytest.raises(error.OutputSyntaxError):
            get11.body(b"too long")  # the remembered length is enforced
        head10 = ResponseWriter(b"HEAD", b"1.0", True)
        assert head10.start(200, b"OK", list(fields), b"X: y\r\n") == (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX: y\r\nContent-Length: 5\r\n"
            b"Connection: keep-alive\r\n\r\n"
        )
        assert head10.framing is Framing.NONE


def test_a_101_keeps_upgrade_though_the_same_fields_were_remembered() -> None:
    fields = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    assert head_of(200, b"OK", list(fields)).endswith(b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert b"Upgrade" not in head_of(200, b"OK", list(fields))
    switched = head_of(101, b"Switching Protocols", list(fields))
    assert switched == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )


def test_fields_memo_is_bounded_and_skips_big_or_invalid_fields() -> None:
    for i in range(writer._FIELDS.size + 10):
        head_of(200, b"OK", [(b"X", b"%d" % i)])
        assert len(writer._FIELDS) <= writer._FIELDS.size
    big = [(b"X", b"v" * writer._FIELDS_MAX_BYTES)]
    head_of(200, b"OK", big)
    assert tuple(big) not in writer._FIELDS
    bad = [(b"X", b"v\x00")]
    for _ in range(2):
        with pytest.raises(error.OutputSyntaxError):
            head_of(200, b"OK", bad)
    assert tuple(bad) not in writer._FIELDS
    unhashable = [(b"A", bytearray(b"b"))]  # worked out every time
    for _ in range(2):
        assert head_of(200, b"OK", unhashable).startswith(b"HTTP/1.1 200 OK\r\nA: b\r\n")  # type: ignore[arg-type]
