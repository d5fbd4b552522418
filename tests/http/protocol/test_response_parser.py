"""ResponseParser: framing per RFC 9112 §6.3, interim responses, tunnels, rejections."""

from __future__ import annotations

from typing import Any

import pytest

from thor.http import error
from thor.http.protocol import Body, End, Framing, ParserState, ResponseHead, ResponseParser

from .helpers import check, error_of, normalize, response_factory

OK = b"HTTP/1.1 200 OK\r\n"


def parse(data: bytes, *methods: bytes, eof: bool = False, **kw: Any) -> list[Any]:
    return normalize(check(response_factory(*methods, **kw), data, eof=eof))


def test_content_length() -> None:
    events = parse(OK + b"Content-Length: 3\r\nServer:  x \r\n\r\nabc")
    assert events == [
        ResponseHead(
            200,
            b"OK",
            b"1.1",
            [(b"Content-Length", b"3"), (b"Server", b"x")],
            Framing.LENGTH,
            3,
            True,
        ),
        Body(b"abc"),
        End([]),
    ]


def test_chunked_with_trailers() -> None:
    data = OK + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\nDate: z\r\n\r\n"
    events = parse(data)
    assert events[0].framing is Framing.CHUNKED
    assert events[1:] == [Body(b"abc"), End([(b"X", b"y")])]


def test_close_delimited() -> None:
    events = parse(OK + b"\r\nsome body", eof=True)
    assert events[0].framing is Framing.CLOSE
    assert not events[0].keep_alive
    assert events[1:] == [Body(b"some body"), End([])]


def test_te_without_chunked_is_close_delimited() -> None:
    events = parse(OK + b"Transfer-Encoding: gzip\r\n\r\nzz", eof=True)
    assert events[0].framing is Framing.CLOSE
    assert events[-1] == End([])


@pytest.mark.parametrize(
    ("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304), (b"HEAD", 404)]
)
def test_no_body(method: bytes, status: int) -> None:
    data = (
        b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status + OK + b"Content-Length: 0\r\n\r\n"
    )
    events = parse(data, method, b"GET")
    assert events[0].framing is Framing.NONE
    assert events[1] == End([])
    assert events[2].status == 200
    assert events[3] == End([])


def test_interim_responses() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        + OK
        + b"Content-Length: 1\r\n\r\nx"
    )
    events = parse(data, b"POST")
    assert [e.status for e in events if isinstance(e, ResponseHead)] == [100, 103, 200]
    assert events[0].framing is Framing.NONE
    assert events[-2:] == [Body(b"x"), End([])]


def test_switching_protocols_and_connect_tunnel() -> None:
    parser = response_factory(b"GET")()
    events = parser.feed(b"HTTP/1.1 101 Switching\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\nws!")
    assert events[0].framing is Framing.TUNNEL
    assert parser.state is ParserState.TUNNEL
    assert parser.take_leftover() == b"ws!"
    parser = response_factory(b"CONNECT")()
    events = parser.feed(OK + b"\r\n\x16")
    assert events[0].framing is Framing.TUNNEL
    assert parser.take_leftover() == b"\x16"
    # a refused CONNECT is an ordinary response
    events = parse(b"HTTP/1.1 407 No\r\nContent-Length: 1\r\n\r\nx", b"CONNECT")
    assert events[0].framing is Framing.LENGTH


def test_status_line_variants() -> None:
    assert parse(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")[0].phrase == b""
    assert parse(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")[0].phrase == b""
    head = parse(b"HTTP/1.0 404 Not  Found\t!\r\nContent-Length: 0\r\n\r\n")[0]
    assert (head.version, head.status, head.phrase, head.keep_alive) == (
        b"1.0",
        404,
        b"Not  Found\t!",
        False,
    )
    head = parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")[0]
    assert head.keep_alive


def test_pipelined_responses_in_order() -> None:
    data = OK + b"Content-Length: 1\r\n\r\na" + OK + b"Content-Length: 1\r\n\r\nb"
    events = parse(data, b"GET", b"HEAD")
    assert events[1] == Body(b"a")
    assert events[3].framing is Framing.NONE
    assert events[4:] == [End([])]  # the HEAD response has no body: "b" is not parsed as one


def test_connection_close_stops() -> None:
    parser = response_factory(b"GET", b"GET")()
    events = parser.feed(OK + b"Connection: close\r\nContent-Length: 0\r\n\r\n" + OK)
    assert len(events) == 2
    assert parser.state is ParserState.DONE


REJECT: list[tuple[str, bytes, type[error.HttpError]]] = [
    ("te-cl", OK + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", error.UpstreamError),
    ("dup-cl", OK + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\n", error.DuplicateCLError),
    ("bad-cl", OK + b"Content-Length: x\r\n\r\n", error.MalformedCLError),
    ("gzip-chunked", OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n", error.TransferCodeError),
    # RFC 9112 §6.1: chunked at most once, whether in one field line or several.
    ("chunked-twice", OK + b"Transfer-Encoding: chunked, chunked\r\n\r\n", error.UpstreamError),
    (
        "chunked-twice-lines",
        OK + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: Chunked\r\n\r\n",
        error.UpstreamError,
    ),
    (
        "chunked-twice-not-last",
        OK + b"Transfer-Encoding: chunked, chunked, gzip\r\n\r\n",
        error.UpstreamError,
    ),
    ("empty-te", OK + b"Transfer-Encoding: ,\r\n\r\n", error.RequestTransferEncodingError),
    ("version", b"HTTP/2.0 200 OK\r\n\r\n", error.HttpVersionError),
    ("status-short", b"HTTP/1.1 20 OK\r\n\r\n", error.StartLineError),
    ("status-99", b"HTTP/1.1 099 OK\r\n\r\n", error.StartLineError),
    ("status-600", b"HTTP/1.1 600 OK\r\n\r\n", error.StartLineError),
    ("garbage", b"ICY 200 OK\r\n\r\n", error.StartLineError),
    ("leading-crlf", b"\r\n" + OK + b"\r\n", error.StartLineError),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", error.HeaderLineEndingError),
    ("fold", OK + b"A: b\r\n c\r\n\r\n", error.ObsoleteFoldError),
    ("nul-phrase", b"HTTP/1.1 200 O\x00K\r\n\r\n", error.StartLineError),
    ("long-line", b"HTTP/1.1 200 " + b"x" * 9000, error.UpstreamError),
    ("bad-chunk", OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", error.ChunkError),
]


@pytest.mark.parametrize(("data", "cls"), [pytest.param(d, c, id=i) for i, d, c in REJECT])
def test_rejected(data: bytes, cls: type[error.HttpError]) -> None:
    err = error_of(check(response_factory(b"GET"), data))
    assert type(err) is cls


def test_response_without_request() -> None:
    err = error_of(ResponseParser().feed(OK + b"\r\n"))
    assert isinstance(err, error.UpstreamError)


def test_body_limit() -> None:
    err = error_of(check(response_factory(max_body_size=10), OK + b"Content-Length: 11\r\n\r\n"))
    assert isinstance(err, error.ContentTooLargeError)


def test_eof_after_interim_response() -> None:
    parser = response_factory(b"POST")()
    assert len(parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n")) == 1
    assert parser.state is ParserState.HEAD
    assert isinstance(error_of(parser.feed_eof()), error.IncompleteMessageError)


def test_eof_mid_message() -> None:
    err = error_of(check(response_factory(), OK + b"Content-Length: 5\r\n\r\nab", eof=True))
    assert isinstance(err, error.IncompleteMessageError)
    assert parse(b"", eof=True) == []
