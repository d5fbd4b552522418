"""RequestParser: valid messages of every framing and every rejection, split every way."""

from __future__ import annotations

from typing import Any

import pytest

from thor.http import error
from thor.http.protocol import (
    Body,
    End,
    Framing,
    Invalid,
    ParserState,
    RequestHead,
    RequestParser,
)

from .helpers import check, error_of, normalize

H = b"Host: a\r\n"
POST = b"POST / HTTP/1.1\r\n" + H
GET = b"GET / HTTP/1.1\r\n" + H + b"\r\n"


def parse(data: bytes, *, eof: bool = False, **kw: Any) -> list[Any]:
    return check(lambda: RequestParser(**kw), data, eof=eof)


def heads(events: list[Any]) -> list[RequestHead]:
    return [e for e in events if isinstance(e, RequestHead)]


# --- valid messages ------------------------------------------------------------------------


def test_simple_get() -> None:
    events = parse(b"GET /a?b=c HTTP/1.1\r\nHost: a\r\nX-Y:  spaced \t\r\nEmpty:\r\n\r\n")
    head = events[0]
    assert head == RequestHead(
        b"GET",
        b"/a?b=c",
        b"1.1",
        [(b"Host", b"a"), (b"X-Y", b"spaced"), (b"Empty", b"")],
        Framing.NONE,
        None,
        True,
        False,
    )
    assert events[1:] == [End([])]


def test_content_length_body_and_pipelining() -> None:
    data = (
        POST + b"Content-Length: 5\r\n\r\nhello" + GET + POST + b"Content-Length: 0\r\n\r\n" + GET
    )
    events = normalize(parse(data))
    assert [type(e).__name__ for e in events] == [
        "RequestHead",
        "Body",
        "End",
        "RequestHead",
        "End",
        "RequestHead",
        "End",
        "RequestHead",
        "End",
    ]
    assert events[0].framing is Framing.LENGTH
    assert events[0].content_length == 5
    assert events[1] == Body(b"hello")
    assert events[5].content_length == 0


def test_chunked_body_with_extensions_and_trailers() -> None:
    data = (
        POST + b"Transfer-Encoding: chunked\r\n\r\n"
        b'5;a=b;c="q\\"s" ; d\r\nhello\r\n'
        b"0000000000000000000006\r\n world\r\n"
        b"0\r\nX-Trailer: yes\r\nContent-Length: 50\r\nHost: evil\r\n\r\n" + GET
    )
    events = normalize(parse(data))
    assert events[0].framing is Framing.CHUNKED
    assert events[1] == Body(b"hello world")
    assert events[2] == End([(b"X-Trailer", b"yes")])  # forbidden trailers dropped (B21)
    assert isinstance(events[3], RequestHead)


def test_chunked_without_trailers() -> None:
    events = normalize(parse(POST + b"Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
    assert events[1:] == [Body(b"abc"), End([])]


def test_two_chunked_requests_with_trailers() -> None:
    one = POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nA: 1\r\n\r\n"
    events = normalize(parse(one + one))
    assert [e for e in events if isinstance(e, End)] == [End([(b"A", b"1")])] * 2


def test_keep_alive_rules() -> None:
    def ka(version: bytes, conn: bytes | None) -> bool:
        field = b"" if conn is None else b"Connection: " + conn + b"\r\n"
        head = parse(b"GET / HTTP/" + version + b"\r\n" + H + field + b"\r\n")[0]
        return bool(head.keep_alive)

    assert ka(b"1.1", None)
    assert not ka(b"1.1", b"close")
    assert not ka(b"1.1", b"foo, Close")
    assert ka(b"1.1", b"keep-alive")
    assert not ka(b"1.0", None)
    assert ka(b"1.0", b"Keep-Alive")
    assert not ka(b"1.0", b"keep-alive, close")


def test_http10_without_host_and_done_after_close() -> None:
    parser = RequestParser()
    events = parser.feed(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert normalize(events) == normalize(
        [RequestHead(b"GET", b"/", b"1.0", [], Framing.NONE, None, False, False), End([])]
    )
    assert parser.state is ParserState.DONE
    assert parser.feed(b"more") == []
    assert parser.feed_eof() == []


def test_connection_close_stops_parsing_b45() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nInvalid\r\n\r\n"
    events = parse(data)
    assert len(events) == 2
    assert isinstance(events[1], End)


def test_expect_continue() -> None:
    exp = b"Expect: 100-Continue\r\n"
    assert parse(POST + exp + b"Content-Length: 1\r\n\r\nx")[0].expect_continue
    assert parse(POST + exp + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")[0].expect_continue
    assert not parse(POST + exp + b"Content-Length: 0\r\n\r\n")[0].expect_continue
    assert not parse(POST + exp + b"\r\n")[0].expect_continue
    assert not parse(b"POST / HTTP/1.0\r\n" + exp + b"Content-Length: 1\r\n\r\nx")[
        0
    ].expect_continue


def test_leading_empty_lines_are_ignored() -> None:
    events = parse(b"\r\n\r\n\r\n" + GET + b"\r\n" + GET)
    assert len(heads(events)) == 2


def test_connect_tunnel_and_leftover() -> None:
    parser = RequestParser()
    events = parser.feed(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03"
    )
    assert len(events) == 1
    assert events[0].framing is Framing.TUNNEL
    assert parser.state is ParserState.TUNNEL
    assert parser.feed(b"more") == []
    assert parser.take_leftover() == b"\x16\x03more"
    assert parser.take_leftover() == b""
    assert parser.feed_eof() == []
    assert normalize(parse(b"CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\nzz"))[0].target


@pytest.mark.parametrize(
    "target",
    [b"/", b"/a/b?c=d&e", b"http://a.example/x", b"HTTPS://a:1", b"http://a?q"],
)
def test_valid_targets(target: bytes) -> None:
    assert parse(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")[0].target == target


def test_options_asterisk() -> None:
    assert parse(b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n")[0].target == b"*"


def test_content_length_leading_zeros_accepted() -> None:
    assert parse(POST + b"Content-Length: 010\r\n\r\n0123456789")[0].content_length == 10


def test_body_size_limit_exact() -> None:
    events = parse(POST + b"Content-Length: 4\r\n\r\nabcd", max_body_size=4)
    assert isinstance(events[-1], End)
    chunked = POST + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    assert isinstance(parse(chunked, max_body_size=4)[-1], End)


def test_limits_exactly_at_the_edge() -> None:
    line = b"GET /" + b"a" * 95 + b" HTTP/1.1"
    assert len(line) == 109
    assert heads(parse(line + b"\r\n" + H + b"\r\n", max_request_line=109))
    fields = H + b"X: " + b"b" * 20 + b"\r\n"
    assert heads(parse(b"GET / HTTP/1.1\r\n" + fields + b"\r\n", max_field_section=len(fields)))
    assert heads(parse(b"GET / HTTP/1.1\r\n" + H + b"A: 1\r\n\r\n", max_fields=2))


def test_eof_between_and_within_messages() -> None:
    parser = RequestParser()
    parser.feed(GET)
    assert parser.feed_eof() == []
    assert parser.state is ParserState.DONE
    for partial in (b"GE", POST + b"Content-Length: 10\r\n\r\nabc", POST):
        err = error_of(parse(partial, eof=True))
        assert isinstance(err, error.IncompleteMessageError)
    # B22: chunked body missing its final CRLF
    b22 = POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n"
    assert isinstance(error_of(parse(b22, eof=True)), error.IncompleteMessageError)


def test_state_reports_progress() -> None:
    parser = RequestParser()
    assert parser.state is ParserState.IDLE
    parser.feed(b"GET / HT")
    assert parser.state is ParserState.HEAD
    parser.feed(b"TP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    assert parser.state is ParserState.BODY
    parser.feed(b"ab")
    assert parser.state is ParserState.IDLE


def test_invalid_is_final() -> None:
    parser = RequestParser()
    events = parser.feed(b"GET / HTTP/1.1\r\n\r\n" + GET)
    assert len(events) == 1
    assert isinstance(events[0], Invalid)
    assert parser.state is ParserState.DONE
    assert parser.feed(GET) == []
    assert parser.feed_eof() == []


def test_body_is_the_input_object_when_possible() -> None:
    parser = RequestParser()
    parser.feed(POST + b"Content-Length: 100000\r\n\r\n")
    chunk = b"x" * 100000
    (body, end) = parser.feed(chunk)
    assert body.data is chunk
    assert end == End([])


def test_trickled_huge_head_is_linear() -> None:
    # 30 000 one-byte feeds of a head close to the limit: quadratic rescanning would be slow.
    parser = RequestParser(max_field_section=40000)
    data = b"GET / HTTP/1.1\r\n" + H + b"X: " + b" " * 30000 + b"y\r\n\r\n"
    events: list[Any] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert events[0].headers[-1] == (b"X", b"y")
