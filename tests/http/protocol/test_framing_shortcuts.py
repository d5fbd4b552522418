"""Framing shortcuts for the usual case (Content-Length, Connection, status lines) give the
answers of the full checks."""

from __future__ import annotations

import dataclasses

import pytest

from thor.http import error
from thor.http.protocol import Body, End, Framing, ResponseHead, messages, response_reader
from thor.http.protocol.framing import keep_alive, parse_content_length
from thor.http.protocol.response_reader import parse_status_line

from .helpers import check, normalize, response_factory


@pytest.mark.parametrize(
    ("values", "limit", "expected"),
    [
        ([b"1024"], None, 1024),
        ([b"0"], 0, 0),
        ([b"00"], None, 0),
        ([b"9" * 18], None, 10**18 - 1),
        ([b"0" * 25 + b"1"], None, 1),  # leading zeros are digits, not magnitude
        ([b"1024"], 1024, 1024),
    ],
)
def test_content_length_accepted(values: list[bytes], limit: int | None, expected: int) -> None:
    assert parse_content_length(values, limit) == expected


@pytest.mark.parametrize(
    ("values", "limit", "err"),
    [
        ([b"1025"], 1024, error.ContentTooLargeError),
        ([b"9" * 19], None, error.ContentTooLargeError),
        ([b"12a"], None, error.MalformedCLError),
        ([b"\xd9\xa1"], None, error.MalformedCLError),  # not an ASCII digit
        ([b"+1"], None, error.MalformedCLError),
        ([b""], None, error.MalformedCLError),
        ([b"1,1"], None, error.DuplicateCLError),
        ([b"1", b"1"], None, error.DuplicateCLError),
    ],
)
def test_content_length_refused(
    values: list[bytes], limit: int | None, err: type[error.HttpError]
) -> None:
    with pytest.raises(err):
        parse_content_length(values, limit)


@pytest.mark.parametrize(
    ("version", "values", "expected"),
    [
        (b"1.0", [b"keep-alive"], True),
        (b"1.0", [b"Keep-Alive"], True),
        (b"1.1", [b"close"], False),
        (b"1.1", [b"CLOSE"], False),
        (b"1.0", [b"upgrade"], False),
        (b"1.1", [b"upgrade"], True),
        (b"1.1", [b"keep-alive", b"close"], False),
        (b"1.0", [b"foo, keep-alive"], True),
    ],
)
def test_keep_alive(version: bytes, values: list[bytes], expected: bool) -> None:
    assert keep_alive(version, {b"connection": values}) is expected


def test_status_lines_are_remembered_only_when_valid_and_within_bounds() -> None:
    assert parse_status_line(b"HTTP/1.1 200 OK") == (b"1.1", 200, b"OK")
    assert parse_status_line(b"HTTP/1.1 200 OK") == (b"1.1", 200, b"OK")
    assert parse_status_line(b"HTTP/1.0 204") == (b"1.0", 204, b"")
    for bad in (b"HTTP/1.2 200 OK", b"HTTP/1.1 600 X", b"HTTP/1.1 200 O\x01K"):
        assert parse_status_line(bad) is None
        assert bad not in response_reader._STATUS_LINES
    for i in range(response_reader._STATUS_LINES_MAX + 5):
        assert parse_status_line(b"HTTP/1.1 200 x%d" % i) == (b"1.1", 200, b"x%d" % i)
    assert len(response_reader._STATUS_LINES) <= response_reader._STATUS_LINES_MAX


def test_built_response_head_equals_a_constructed_one() -> None:
    args = (200, b"OK", b"1.1", [(b"Content-Length", b"2")], Framing.LENGTH, 2, True)
    built = messages.new_response_head(*args)
    made = ResponseHead(*args)
    assert type(built) is ResponseHead
    assert built == made
    assert repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.status = 404  # type: ignore[misc]


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "events"),
    [
        (b'8\r\n{"a": 1}\r\n0\r\n\r\n', [Body(b'{"a": 1}'), End([])]),
        (b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", [Body(b"abc0123456789"), End([])]),
        (b"3\r\nabc\r\n0\r\nX: y\r\n\r\n", [Body(b"abc"), End([(b"X", b"y")])]),
        (b"3;ext=1\r\nabc\r\n0\r\n\r\n", [Body(b"abc"), End([])]),
        (b"0" * 17 + b"3\r\nabc\r\n0\r\n\r\n", [Body(b"abc"), End([])]),  # general path
        (b"3\r\nabcX\r\n", [Body(b"abc"), ("Invalid", error.ChunkTerminatorError)]),
        (b"3\r\nabc\n0\r\n\r\n", [Body(b"abc"), ("Invalid", error.ChunkTerminatorError)]),
        (b"1" * 17 + b"\r\n", [("Invalid", error.ContentTooLargeError)]),
        (b"3 \r\nabc\r\n0\r\n\r\n", [("Invalid", error.ChunkError)]),  # BWS, no extension
        (b"3\nabc\r\n", [("Invalid", error.ChunkError)]),
    ],
)
def test_chunks_in_one_call_give_the_general_readers_events(
    body: bytes, events: list[object]
) -> None:
    # check() also feeds every split, which makes the chunk readers take the general path.
    got = normalize(check(response_factory(), CHUNKED + body))
    assert got[1:] == events


def test_the_chunked_body_limit_holds_on_the_shortcut() -> None:
    got = normalize(check(response_factory(max_body_size=5), CHUNKED + b"3\r\nabc\r\n3\r\ndef\r\n"))
    assert got[1:] == [Body(b"abc"), ("Invalid", error.ContentTooLargeError)]
