"""ResponseWriter and RequestWriter: framing decisions, stripping, validation, state."""

from __future__ import annotations

import pytest

from thor.http import error
from thor.http.protocol import (
    Body,
    End,
    Framing,
    RequestParser,
    RequestWriter,
    ResponseWriter,
    WriterState,
)

from .helpers import normalize, response_factory

CL = [(b"Content-Length", b"3")]


def head_lines(head: bytes) -> list[bytes]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")


# (method, version, keep_alive, status, headers) -> (framing, framing lines, keep_alive after)
FRAMING = [
    (b"GET", b"1.1", True, 200, CL, Framing.LENGTH, [b"Content-Length: 3"], True),
    (b"GET", b"1.1", True, 200, [], Framing.CHUNKED, [b"Transfer-Encoding: chunked"], True),
    (b"GET", b"1.1", False, 200, [], Framing.CHUNKED,
     [b"Transfer-Encoding: chunked", b"Connection: close"], False),
    (b"GET", b"1.0", False, 200, [], Framing.CLOSE, [b"Connection: close"], False),
    (b"GET", b"1.0", True, 200, [], Framing.CLOSE, [b"Connection: close"], False),
    (b"GET", b"1.0", True, 200, CL, Framing.LENGTH,
     [b"Content-Length: 3", b"Connection: keep-alive"], True),
    (b"HEAD", b"1.1", True, 200, CL, Framing.NONE, [b"Content-Length: 3"], True),
    (b"HEAD", b"1.1", True, 200, [], Framing.NONE, [], True),
    (b"HEAD", b"1.0", False, 200, [], Framing.NONE, [b"Connection: close"], False),
    (b"GET", b"1.1", True, 304, CL, Framing.NONE, [b"Content-Length: 3"], True),
    (b"GET", b"1.1", True, 204, CL, Framing.NONE, [], True),
    (b"GET", b"1.1", True, 101, [(b"Upgrade", b"ws"), (b"Connection", b"upgrade")],
     Framing.TUNNEL, [], False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "version", "ka", "status", "headers", "framing", "lines", "ka_after"), FRAMING
)
def test_response_framing(
    method: bytes,
    version: bytes,
    ka: bool,
    status: int,
    headers: list[tuple[bytes, bytes]],
    framing: Framing,
    lines: list[bytes],
    ka_after: bool,
) -> None:
    writer = ResponseWriter(method, version, ka)
    head = writer.start(status, b"X", headers)
    got = head_lines(head)
    assert got[0] == b"HTTP/1.1 %d X" % status
    if status == 101:
        assert got[1:] == [b"Upgrade: ws", b"Connection: upgrade"]
    else:
        assert got[1:] == lines
    assert writer.framing is framing
    assert writer.keep_alive is ka_after


def test_connect_success_is_a_tunnel() -> None:
    writer = ResponseWriter(b"CONNECT", b"1.1", True)
    assert writer.start(200, b"OK", CL) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert writer.framing is Framing.TUNNEL
    assert not writer.keep_alive
    assert writer.body(b"\x16\x03") == b"\x16\x03"
    refused = ResponseWriter(b"CONNECT", b"1.1", True)
    refused.start(403, b"Forbidden", [])
    assert refused.framing is Framing.CHUNKED


def test_bodiless_responses_discard_body_b47() -> None:
    writer = ResponseWriter(b"HEAD", b"1.1", True)
    writer.start(200, b"OK", CL)
    assert writer.body(b"abc") == b""
    assert writer.end() == b""
    assert writer.complete
    assert writer.keep_alive


def test_chunked_body_and_trailers() -> None:
    writer = ResponseWriter(b"GET", b"1.1", True)
    writer.start(200, b"OK", [])
    assert writer.body(b"hello world!") == b"c\r\nhello world!\r\n"
    assert writer.body(b"") == b""
    assert writer.end([(b"X-T", b"1")]) == b"0\r\nX-T: 1\r\n\r\n"
    assert writer.complete
    assert writer.state is WriterState.DONE


def test_content_length_counting() -> None:
    writer = ResponseWriter(b"GET", b"1.1", True)
    writer.start(200, b"OK", CL)
    assert writer.body(b"ab") == b"ab"
    with pytest.raises(error.OutputSyntaxError):
        writer.body(b"cd")
    short = ResponseWriter(b"GET", b"1.1", True)
    short.start(200, b"OK", CL)
    short.body(b"a")
    assert short.end() == b""
    assert not short.complete
    assert not short.keep_alive


def test_close_delimited_body() -> None:
    writer = ResponseWriter(b"GET", b"1.0", False)
    writer.start(200, b"OK", [])
    assert writer.body(b"raw") == b"raw"
    assert writer.end([(b"Ignored", b"x")]) == b""
    assert writer.complete


def test_hop_by_hop_stripped_and_extra_appended() -> None:
    writer = ResponseWriter(b"GET", b"1.1", True)
    headers = [
        (b"Connection", b"X-Private, close"),
        (b"X-Private", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"gzip"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Connection", b"x"),
        (b"Trailer", b"X"),
        (b"Content-Type", b"text/plain"),
    ]
    head = writer.start(200, b"OK", headers, b"Server: thor\r\n")
    # Trailer is end-to-end (RFC 9110 §6.6.2): it stays, announcing the trailer fields.
    assert head_lines(head)[1:] == [
        b"Trailer: X",
        b"Content-Type: text/plain",
        b"Server: thor",
        b"Transfer-Encoding: chunked",
    ]


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        # A relayed "Connection: keep-alive" names no field: only it goes.
        (
            [(b"Content-Length", b"2"), (b"Connection", b"Keep-Alive"), (b"Keep", b"1")],
            [b"Keep: 1", b"Content-Length: 2"],
        ),
        # Every Connection line counts, whatever its case and spacing (RFC 9110 §7.6.1).
        (
            [
                (b"connection", b"close"),
                (b"CONNECTION", b" x-a ,X-B"),
                (b"X-A", b"1"),
                (b"x-b", b"2"),
                (b"X-C", b"3"),
                (b"Content-Length", b"0"),
            ],
            [b"X-C: 3", b"Content-Length: 0"],
        ),
    ],
)
def test_connection_options_dropped(headers: list[tuple[bytes, bytes]], kept: list[bytes]) -> None:
    head = ResponseWriter(b"GET", b"1.1", True).start(200, b"OK", headers)
    assert head_lines(head)[1:] == kept


def test_switching_protocols_keeps_upgrade_and_connection() -> None:
    writer = ResponseWriter(b"GET", b"1.1", True)
    headers = [(b"Connection", b"Upgrade, X-A"), (b"Upgrade", b"websocket"), (b"X-A", b"1")]
    head = writer.start(101, b"Switching Protocols", headers)
    assert head_lines(head)[1:] == [b"Connection: Upgrade, X-A", b"Upgrade: websocket"]
    assert writer.framing is Framing.TUNNEL


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Foo", b"x\r\nBar: y")],
        [(b"Foo", b"x\nBar: y")],
        [(b"Foo", b"x\x00")],
        [(b"Foo Bar", b"x")],
        [(b"Foo:", b"x")],
        [(b"", b"x")],
        [("Foo", b"x")],
        [(b"Foo", "x")],
        [(b"Content-Length", b"1, 1")],
        [(b"Content-Length", b"1"), (b"Content-Length", b"1")],
    ],
)
def test_injection_rejected_b49(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(error.OutputSyntaxError):
        ResponseWriter(b"GET", b"1.1", True).start(200, b"OK", headers)
    with pytest.raises(error.OutputSyntaxError):
        RequestWriter().start(b"GET", b"/", headers)


def test_every_octet_in_a_value_as_the_grammar_says() -> None:
    # RFC 9110 §5.5: HTAB, SP, VCHAR and obs-text; every other octet is refused, wherever
    # it sits among the values written (the check runs on them joined).
    for octet in range(256):
        headers = [(b"A", b"1"), (b"Foo", b"x" + bytes([octet]) + b"y")]
        if octet == 0x09 or 0x20 <= octet <= 0x7E or octet >= 0x80:
            ResponseWriter(b"GET", b"1.1", True).start(200, b"OK", headers)
            RequestWriter().start(b"GET", b"/", headers)
            continue
        with pytest.raises(error.OutputSyntaxError):
            ResponseWriter(b"GET", b"1.1", True).start(200, b"OK", headers)
        with pytest.raises(error.OutputSyntaxError):
            RequestWriter().start(b"GET", b"/", headers)


@pytest.mark.parametrize("phrase", [b"O\r\nK", b"\x00", "OK"])
def test_bad_phrase(phrase: bytes) -> None:
    with pytest.raises(error.OutputSyntaxError):
        ResponseWriter(b"GET", b"1.1", True).start(200, phrase, [])


@pytest.mark.parametrize("status", [99, 600, "200"])
def test_bad_status(status: int) -> None:
    with pytest.raises(error.OutputSyntaxError):
        ResponseWriter(b"GET", b"1.1", True).start(status, b"X", [])


def test_nonfinal() -> None:
    writer = ResponseWriter(b"POST", b"1.1", True)
    assert writer.nonfinal(100, b"Continue", []) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert writer.nonfinal(103, b"Early", [(b"Link", b"</a>")]) == (
        b"HTTP/1.1 103 Early\r\nLink: </a>\r\n\r\n"
    )
    assert ResponseWriter(b"POST", b"1.0", True).nonfinal(100, b"Continue", []) == b""
    for status in (101, 200):
        with pytest.raises(error.OutputStateError):
            ResponseWriter(b"GET", b"1.1", True).nonfinal(status, b"X", [])
    with pytest.raises(error.OutputStateError):
        ResponseWriter(b"GET", b"1.1", True).start(100, b"X", [])


def test_state_errors() -> None:
    writer = ResponseWriter(b"GET", b"1.1", True)
    with pytest.raises(error.OutputStateError):
        writer.body(b"x")
    with pytest.raises(error.OutputStateError):
        writer.end()
    writer.start(200, b"OK", [])
    with pytest.raises(error.OutputStateError):
        writer.start(200, b"OK", [])
    with pytest.raises(error.OutputStateError):
        writer.nonfinal(100, b"Continue", [])
    writer.end()
    with pytest.raises(error.OutputStateError):
        writer.body(b"x")


def test_request_writer_framing() -> None:
    writer = RequestWriter()
    head = writer.start(b"POST", b"/x", [(b"Host", b"a"), (b"Transfer-Encoding", b"gzip")])
    assert head == b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert writer.body(b"abc") == b"3\r\nabc\r\n"
    assert writer.end() == b"0\r\n\r\n"
    writer = RequestWriter()
    assert writer.start(b"GET", b"/", [(b"Host", b"a")]) == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert writer.framing is Framing.NONE
    with pytest.raises(error.OutputStateError):
        writer.body(b"x")
    writer = RequestWriter()
    writer.start(b"PUT", b"/", [(b"Host", b"a"), (b"Content-Length", b"2")])
    assert writer.body(b"ab") == b"ab"
    assert writer.end() == b""
    assert writer.complete
    writer = RequestWriter()
    writer.start(b"GET", b"/", [(b"Host", b"a")], has_body=True)
    assert writer.framing is Framing.CHUNKED
    writer = RequestWriter()
    writer.start(b"POST", b"/", [(b"Host", b"a")], has_body=False)
    assert writer.framing is Framing.NONE


@pytest.mark.parametrize(
    ("method", "target"), [(b"G T", b"/"), (b"GET", b"/a b"), (b"GET", b"/\r\n"), ("GET", b"/")]
)
def test_request_writer_rejects(method: bytes, target: bytes) -> None:
    with pytest.raises(error.OutputSyntaxError):
        RequestWriter().start(method, target, [])


def test_round_trip_request() -> None:
    writer = RequestWriter()
    data = writer.start(b"POST", b"/u", [(b"Host", b"h")]) + writer.body(b"abc") + writer.end()
    events = normalize(RequestParser().feed(data))
    assert events[0].framing is Framing.CHUNKED
    assert events[1:] == [Body(b"abc"), End([])]


def test_round_trip_response() -> None:
    writer = ResponseWriter(b"GET", b"1.1", True)
    data = writer.start(200, b"OK", []) + writer.body(b"abc") + writer.end([(b"X", b"y")])
    events = normalize(response_factory(b"GET")().feed(data))
    assert events[1:] == [Body(b"abc"), End([(b"X", b"y")])]


def test_body_whole_follows_the_framing() -> None:
    """What the server asks when a client leaves before response_done (issue 14, bug 1)."""
    sized = ResponseWriter(b"GET", b"1.1", True)
    assert not sized.body_whole  # nothing written
    sized.start(200, b"OK", [(b"Content-Length", b"5")], b"")
    assert not sized.body_whole
    sized.body(b"hel")
    assert not sized.body_whole
    sized.body(b"lo")
    assert sized.body_whole
    chunked = ResponseWriter(b"GET", b"1.1", True)
    chunked.start(200, b"OK", [], b"")
    chunked.body(b"hello")
    assert not chunked.body_whole  # the last chunk is still to come
    chunked.end([])
    assert chunked.body_whole
    bodiless = ResponseWriter(b"GET", b"1.1", True)
    bodiless.start(204, b"No Content", [], b"")
    assert bodiless.body_whole
    head = ResponseWriter(b"HEAD", b"1.1", True)
    head.start(200, b"OK", [(b"Content-Length", b"5")], b"")
    assert head.body_whole
