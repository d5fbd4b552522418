"""Every rejection, with its status and error class, fed whole, byte by byte and split."""

from __future__ import annotations

from typing import Any

import pytest

from thor.http import error
from thor.http.protocol import End, RequestHead, RequestParser

from .helpers import check, error_of, normalize

P = b"POST / HTTP/1.1\r\nHost: a\r\n"
P10 = b"POST / HTTP/1.0\r\n"
CH = P + b"Transfer-Encoding: chunked\r\n\r\n"
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
E = error

# (id, payload, expected class, expected status). Ids Bnn are servers.md Appendix B.
APPENDIX_B: list[tuple[str, bytes, type[E.HttpError], int]] = [
    ("B1", P + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + GET,
     E.TransferEncodingCLError, 400),
    ("B2", P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     E.RequestTransferEncodingError, 400),
    ("B3", P + b"Transfer-Encoding: blegh\r\n\r\n", E.TransferCodeError, 501),
    ("B4", P + b"Transfer-Encoding: gzip, chunked\r\n\r\n", E.TransferCodeError, 501),
    ("B5", P + b"Transfer-Encoding: chunked, gzip\r\n\r\n", E.RequestTransferEncodingError, 400),
    ("B6", P + b"Transfer-Encoding: ,chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + GET,
     E.TransferEncodingCLError, 400),
    ("B6b", P + b"Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n" + GET,
     E.RequestTransferEncodingError, 400),
    ("B7", P + b"Transfer-Encoding: \xa0chunked\xa0\r\n\r\n", E.RequestTransferEncodingError, 400),
    ("B7b", P + b"Transfer-Encoding: \x0bchunked\x0b\r\n\r\n", E.HeaderValueError, 400),
    ("B8", P10 + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", E.RequestTransferEncodingError,
     400),
    ("B9", P + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n", E.ObsoleteFoldError,
     400),
    ("B10", P + b"Transfer-Encoding: chunked;ext=val\r\n\r\n", E.TransferCodeError, 501),
    ("B11", P + b"Content-Length: 1\r\nContent-Length: 0\r\n\r\nZ", E.DuplicateCLError, 400),
    ("B12", P + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nZ", E.DuplicateCLError, 400),
    ("B12b", P + b"Content-Length: 1, 1\r\n\r\nZ", E.DuplicateCLError, 400),
    ("B13+", P + b"Content-Length: +1\r\n\r\nZ", E.MalformedCLError, 400),
    ("B13-", P + b"Content-Length: -48\r\n\r\nZ", E.MalformedCLError, 400),
    ("B13x", P + b"Content-Length: 0x1\r\n\r\nZ", E.MalformedCLError, 400),
    ("B13_", P + b"Content-Length: 1_0\r\n\r\nZ", E.MalformedCLError, 400),
    ("B13Z", P + b"Content-Length: 1Z\r\n\r\nZ", E.MalformedCLError, 400),
    ("B13e", P + b"Content-Length: \r\n\r\nZ", E.MalformedCLError, 400),
    ("B13s", P + b"Content-Length: 1 0\r\n\r\nZ", E.MalformedCLError, 400),
    ("B14", P + b"Content-Length: 99999999999999999999999999\r\n\r\n", E.ContentTooLargeError, 413),
    ("B15x", CH + b"0x1\r\nZ\r\n0\r\n\r\n", E.ChunkError, 400),
    ("B15_", CH + b"0_2e\r\n", E.ChunkError, 400),
    ("B15+", CH + b"+1\r\nZ\r\n", E.ChunkError, 400),
    ("B15e", CH + b"\r\nZ\r\n", E.ChunkError, 400),
    ("B15f", CH + b"ffffffffffffffffffff\r\n", E.ContentTooLargeError, 413),
    ("B16", CH + b"1\nZ\r\n0\r\n\r\n", E.ChunkError, 400),
    ("B17", CH + b"1\r\nZXX0\r\n\r\n", E.ChunkTerminatorError, 400),
    ("B17b", CH + b"1\r\nZ\rX0\r\n\r\n", E.ChunkTerminatorError, 400),
    ("B18r", CH + b"1;\rx\r\nZ\r\n0\r\n\r\n", E.ChunkError, 400),
    ("B18n", CH + b"1;\nZ\r\n0\r\n\r\n", E.ChunkError, 400),
    ("B18z", CH + b"1;\x00ext\r\nZ\r\n0\r\n\r\n", E.ChunkError, 400),
    ("B19", CH + b"5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\n" + GET, E.ChunkError, 400),
    ("B20", CH + b"INVALID!!!\r\n" + GET, E.ChunkError, 400),
    ("B24", P + b"Content-Length : 34\r\n\r\n", E.HeaderSpaceError, 400),
    ("B25", b"POST / HTTP/1.1\r\n\tContent-Length: 1\r\nHost: a\r\n\r\nZ", E.TopLineSpaceError,
     400),
    ("B25b", P + b" Content-Length: 1\r\n\r\nZ", E.ObsoleteFoldError, 400),
    ("B26", P + b"X-A: a\r\n b\r\n\r\n", E.ObsoleteFoldError, 400),
    ("B27", P + b": ignored\r\n\r\n", E.HeaderNameError, 400),
    ("B28z", P + b"X: v\x00alue\r\n\r\n", E.HeaderValueError, 400),
    ("B28r", P + b"X: va\rlue\r\n\r\n", E.BareCRError, 400),
    ("B28s", P + b"Visible: :/\rSmuggled: :)\r\n\r\n", E.BareCRError, 400),
    ("B29", P + b"Content-Length 10\r\n\r\n", E.HeaderNoColonError, 400),
    ("B30a", P + b"\xefoo: bar\r\n\r\n", E.HeaderNameError, 400),
    ("B30b", P + b"X\x01Y: z\r\n\r\n", E.HeaderNameError, 400),
    ("B31", P + b"Transfer-\r\nEncoding: chunked\r\n\r\n", E.HeaderNoColonError, 400),
    ("B32", b"GET / HTTP/1.1\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n",
     E.BareCRError, 400),
    ("B33", b"GET / HTTP/1.1\nHost: a\n\n", E.HeaderLineEndingError, 400),
    ("B34", b"GET / HTTP/1.1\r\n\r\n", E.HostRequiredError, 400),
    ("B35", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", E.InvalidHostError, 400),
    ("B36a", b"GET / HTTP/1.32\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("B36b", b"GET / HTTP/4294967295.255\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("B36c", b"GET / HTTP/\r\r1.1\r\nHost: a\r\n\r\n", E.BareCRError, 400),
    ("B37", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", E.HttpVersionError, 505),
    ("B38", b"GET /\r\n\r\n", E.RequestLineError, 400),
    ("B39a", b'G=":<>(e),[T];?" / HTTP/1.1\r\nHost: a\r\n\r\n', E.RequestLineError, 400),
    ("B39b", b"\x00 / HTTP/1.1\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("B40a", b"GET ! HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("B40b", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("B40c", b"GET /p#frag HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    # RFC 9110 §4.2.1: an http URI with an empty host MUST be rejected; §4.2.4: userinfo.
    ("abs-empty-host", b"GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("abs-userinfo", b"GET http://u:p@a/p HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("B41a", b"GET /\nHTTP/1.1\r\nHost: a\r\n\r\n", E.HeaderLineEndingError, 400),
    ("B41b", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("B43", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
     E.RequestLineTooLongError, 414),
    ("B44a", P + b"X: " + b"a" * 65536 + b"\r\n\r\n", E.FieldSectionTooLargeError, 431),
    ("B44b", P + b"".join(b"X%d: y\r\n" % i for i in range(1000)) + b"\r\n",
     E.TooManyFieldsError, 431),
]  # fmt: skip

OTHER: list[tuple[str, bytes, type[E.HttpError], int]] = [
    ("cl-too-big", P + b"Content-Length: 11\r\n\r\n", E.ContentTooLargeError, 413),
    ("chunk-too-big", CH + b"6\r\nabcdef\r\n6\r\n", E.ContentTooLargeError, 413),
    ("chunk-line-long", CH + b"1;" + b"a" * 1100 + b"\r\n", E.ChunkError, 400),
    ("chunk-ext-bad", CH + b"1;a=\"x\r\nZ\r\n", E.ChunkError, 400),
    ("chunk-ext-space", CH + b"1 ; a = b\r\nZ\r\n0\r\n\r\nGET  / HTTP/1.1\r\n",
     E.RequestLineError, 400),
    ("te-empty-member", P + b"Transfer-Encoding: chunked,,\r\n\r\n", E.RequestTransferEncodingError,
     400),
    ("te-identity", P + b"Transfer-Encoding: identity\r\n\r\n", E.TransferCodeError, 501),
    ("trailer-fold", CH + b"0\r\nA: b\r\n c\r\n\r\n", E.ObsoleteFoldError, 400),
    ("trailer-bare-lf", CH + b"0\r\nA: b\n\r\n", E.HeaderLineEndingError, 400),
    ("trailer-first-space", CH + b"0\r\n A: b\r\n\r\n", E.TopLineSpaceError, 400),
    ("trailer-lf", CH + b"0\r\n\n\r\n", E.HeaderLineEndingError, 400),
    ("trailer-cr", CH + b"0\r\n\rX\r\n\r\n", E.BareCRError, 400),
    ("trailers-too-many", CH + b"0\r\n" + b"A: b\r\n" * 101 + b"\r\n", E.TooManyFieldsError, 431),
    ("first-line-lf", b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", E.HeaderLineEndingError, 400),
    ("leading-cr", b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", E.BareCRError, 400),
    ("http09-version", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", E.HttpVersionError, 505),
    ("http12", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", E.HttpVersionError, 505),
    ("lower-http", b"GET / http/1.1\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("trailing-space", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("tab-sep", b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("utf8-target", b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", E.RequestLineError, 400),
    ("authority-get", b"GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("connect-origin", b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("connect-noport", b"CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("ftp-absolute", b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("absolute-frag", b"GET http://a/#x HTTP/1.1\r\nHost: a\r\n\r\n", E.UrlError, 400),
    ("bad-host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", E.InvalidHostError, 400),
    ("bad-host-at", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", E.InvalidHostError, 400),
    ("host-10-twice", b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", E.InvalidHostError, 400),
    ("del-in-value", P + b"X: a\x7fb\r\n\r\n", E.HeaderValueError, 400),
    ("no-colon-no-space", P + b"X\r\n\r\n", E.HeaderNoColonError, 400),
    ("tab-before-colon", P + b"X\t: y\r\n\r\n", E.HeaderSpaceError, 400),
    ("bare-cr-line-end", P + b"X: y\r\r\n\r\n", E.BareCRError, 400),
    ("line-414-partial", b"GET /" + b"a" * 9000, E.RequestLineTooLongError, 414),
    ("section-431-partial", P + b"X: " + b"a" * 40000, E.FieldSectionTooLargeError, 431),
    ("pipelined-bad-after-good", GET + b"GET / HTTP/1.1\r\n\r\n", E.HostRequiredError, 400),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "cls", "status"),
    [pytest.param(p, c, s, id=i) for i, p, c, s in APPENDIX_B + OTHER],
)
def test_rejected(payload: bytes, cls: type[E.HttpError], status: int) -> None:
    kw: dict[str, Any] = {"max_body_size": 10} if status == 413 else {}
    err = error_of(check(lambda: RequestParser(**kw), payload))
    assert type(err) is cls, repr(err)
    assert err.status == status
    assert err.server_status[0] == str(status).encode()


@pytest.mark.parametrize(
    ("payload", "cls", "status"),
    [pytest.param(p, c, s, id=i) for i, p, c, s in APPENDIX_B + OTHER],
)
def test_rejected_with_trailing_data(payload: bytes, cls: type[E.HttpError], status: int) -> None:
    # An error depends only on the bytes up to it: whatever follows cannot change it.
    kw: dict[str, Any] = {"max_body_size": 10} if status == 413 else {}
    events = RequestParser(**kw).feed(payload + b"\r\n\r\n" + GET)
    assert type(error_of(events)) is cls


def test_b21_forbidden_trailer_dropped() -> None:
    events = normalize(check(RequestParser, CH + b"0\r\nContent-Length: 50\r\n\r\n" + GET))
    assert events[1] == End([])
    assert isinstance(events[2], RequestHead)


def test_b23_truncated_body() -> None:
    err = error_of(check(RequestParser, P + b"Content-Length: 10\r\n\r\nabc", eof=True))
    assert isinstance(err, E.IncompleteMessageError)


def test_b46_zero_length_keep_alive() -> None:
    data = P + b"Content-Length: 0\r\nConnection: keep-alive\r\n\r\n" + GET
    events = check(RequestParser, data)
    assert [type(e) for e in events] == [RequestHead, End, RequestHead, End]


def test_b14_content_length_larger_than_int64_without_limit() -> None:
    err = error_of(check(RequestParser, P + b"Content-Length: 9223372036854775808000\r\n\r\n"))
    assert isinstance(err, E.ContentTooLargeError)


def test_b54_long_whitespace_runs_are_linear() -> None:
    # Quadratic regexes would take minutes on these; linear ones take milliseconds.
    for junk in (b" " * 30000 + b"\x00", b"\t " * 15000 + b"x\x01", b"a " * 15000 + b"\x7f"):
        parser = RequestParser()
        events = parser.feed(P + b"X: " + junk + b"\r\n\r\n")
        assert isinstance(error_of(events), E.HeaderValueError)
    parser = RequestParser(max_chunk_line=100000)
    events = parser.feed(CH + b"1;a" + b" " * 50000 + b"x\r\n")
    assert isinstance(error_of(events), E.ChunkError)
