"""h2spec-style conformance over a real socket: raw frames to Thor's HttpServer (h2c with
prior knowledge), one connection per case, and the answer each MUST of RFC 9113 §3-6, §8
and RFC 7541 names: a connection error (GOAWAY with its code, then the connection closes),
a stream error (RST_STREAM with its code, the connection alive), or nothing (the frame is
ignored: a PING still gets its ACK).  Header blocks are encoded by the ``hpack`` package, an
encoder independent of Thor's; the broken ones by hand.

The in-memory tests (test_connection.py, test_frames.py, test_edges.py) check the same
rules on the core; these check that the served connection says them on the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import hpack
import pytest

from tests.http.server_helpers import ServerThread

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x9


def frame(type_: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((type_, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


GET_FIELDS = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "localhost")]


def block(
    fields: list[tuple[str, str]] | None = None, *, extra: Sequence[tuple[str, str]] = ()
) -> bytes:
    """A request's header block (GET / unless ``fields``), by the hpack package."""
    base = fields if fields is not None else GET_FIELDS
    return bytes(hpack.Encoder().encode([*base, *extra]))


def post(stream_id: int, *, end_stream: bool = False, path: str = "/") -> bytes:
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "l")]
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id, block(fields))


def get(stream_id: int) -> bytes:
    return frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block())


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(
        SETTINGS, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs)
    )


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big"))


def rst(stream_id: int, code: int = 0x8) -> bytes:
    return frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))


PING_PROBE = frame(PING, 0, 0, b"probe!!!")


def answer(ex: Any) -> None:
    if ex.uri == b"/hold":  # a reader that takes nothing: the stream window stays closed
        ex.pause_request_body(True)
    body: list[bytes] = []
    ex.on("request_body", body.append)
    ex.on("request_done", lambda t: ex.respond(200, "OK", [], b"ok:%d" % len(b"".join(body))))


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with ServerThread(answer) as srv:
        yield srv.port


class Wire:
    """One h2c connection, handshake done; ``frames()`` reads what the server sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self.closed = False
        self.sock.sendall(PREFACE + settings() + frame(SETTINGS, ACK, 0))

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def next_frame(self, deadline: float) -> tuple[int, int, int, bytes] | None:
        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    head, self.buffer = self.buffer[: 9 + length], self.buffer[9 + length :]
                    sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                    return head[3], head[4], sid, head[9:]
            if self.closed:
                return None
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.closed = True
            self.buffer += data

    def expect(self, kind: str, *args: int, timeout: float = 5.0) -> tuple[int, int, int, bytes]:
        """Read until the frame ``kind`` says (GOAWAY with a code, RST_STREAM on a stream
        with a code, the PING probe's ACK, a response HEADERS on a stream)."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            got = self.next_frame(deadline)
            if got is None:
                break
            type_, flags, sid, payload = got
            seen.append((type_, flags, sid, payload[:16]))
            if kind == "goaway" and type_ == GOAWAY:
                assert int.from_bytes(payload[4:8], "big") == args[0], seen
                return got
            if kind == "rst" and type_ == RST_STREAM and sid == args[0]:
                assert int.from_bytes(payload, "big") == args[1], seen
                return got
            if kind == "rst" and type_ == GOAWAY:
                raise AssertionError(f"a connection error where a stream error was due: {seen}")
            if kind == "ping" and type_ == PING and flags & ACK and payload == b"probe!!!":
                return got
            if kind == "ping" and type_ in (GOAWAY, RST_STREAM):
                raise AssertionError(f"an error where the frame should be ignored: {seen}")
            if kind == "response" and type_ == HEADERS and sid == args[0]:
                return got
        raise AssertionError(f"no {kind} {args} in time; got {seen}")

    def expect_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.next_frame(deadline) is not None:
            pass
        assert self.closed, "the connection stayed open after a connection error"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(port: int) -> Iterator[Wire]:
    conn = Wire(port)
    yield conn
    conn.close()


# (case, frames sent after the handshake, the connection error's code).  §5.4.1: GOAWAY,
# then the connection is closed.
CONNECTION_ERRORS = [
    # §4.2: a frame over SETTINGS_MAX_FRAME_SIZE (16,384 here).
    ("4.2 DATA over max frame size", post(1) + frame(DATA, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR),
    (
        "4.2 HEADERS over max frame size",
        frame(HEADERS, END_HEADERS, 1, block(extra=[("x", "x" * 30000)])),
        FRAME_SIZE_ERROR,
    ),
    # §4.3: a header block that does not decode.
    (
        "4.3 invalid header block",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff"),
        COMPRESSION_ERROR,
    ),
    (
        "4.3 PRIORITY inside a header block",
        frame(HEADERS, 0, 1, block()) + frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"),
        PROTOCOL_ERROR,
    ),
    # §5.1: frames on idle streams.
    ("5.1 DATA on an idle stream", frame(DATA, 0, 1, b"x"), PROTOCOL_ERROR),
    ("5.1 RST_STREAM on an idle stream", rst(1), PROTOCOL_ERROR),
    ("5.1 WINDOW_UPDATE on an idle stream", window_update(1, 100), PROTOCOL_ERROR),
    (
        "5.1 CONTINUATION on an idle stream",
        frame(CONTINUATION, END_HEADERS, 1, block()),
        PROTOCOL_ERROR,
    ),
    (
        "5.1 CONTINUATION after a complete block",
        get(1) + frame(CONTINUATION, END_HEADERS, 1, b""),
        PROTOCOL_ERROR,
    ),
    # §5.1.1: stream ids.
    ("5.1.1 an even stream id from the client", get(2), PROTOCOL_ERROR),
    ("5.1.1 a stream id lower than one opened", get(5) + get(3), PROTOCOL_ERROR),
    # §5.5: an unknown frame type inside a header block.
    (
        "5.5 unknown frame inside a header block",
        frame(HEADERS, 0, 1, block()) + frame(0x20, 0, 1, b"x"),
        PROTOCOL_ERROR,
    ),
    # §6.1 DATA.
    ("6.1 DATA on stream 0", frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
    (
        "6.1 DATA with a pad length over the payload",
        post(1) + frame(DATA, PADDED, 1, b"\x05ab"),
        PROTOCOL_ERROR,
    ),
    # §6.2 HEADERS.
    ("6.2 HEADERS on stream 0", frame(HEADERS, END_HEADERS, 0, block()), PROTOCOL_ERROR),
    (
        "6.2 HEADERS with a pad length over the payload",
        frame(HEADERS, END_HEADERS | PADDED, 1, b"\xff" + block()),
        PROTOCOL_ERROR,
    ),
    (
        "6.2 HEADERS then DATA without END_HEADERS",
        frame(HEADERS, 0, 1, block()) + frame(DATA, 0, 1, b"x"),
        PROTOCOL_ERROR,
    ),
    # §6.3 PRIORITY.
    ("6.3 PRIORITY on stream 0", frame(PRIORITY, 0, 0, b"\x00\x00\x00\x01\x10"), PROTOCOL_ERROR),
    # §6.4 RST_STREAM.
    ("6.4 RST_STREAM on stream 0", rst(0), PROTOCOL_ERROR),
    (
        "6.4 RST_STREAM of 3 bytes",
        post(1) + frame(RST_STREAM, 0, 1, b"\x00\x00\x08"),
        FRAME_SIZE_ERROR,
    ),
    # §6.5 SETTINGS.
    ("6.5 SETTINGS ACK with a payload", frame(SETTINGS, ACK, 0, b"\x00" * 6), FRAME_SIZE_ERROR),
    ("6.5 SETTINGS on a stream", frame(SETTINGS, 0, 1, b""), PROTOCOL_ERROR),
    (
        "6.5 SETTINGS not a multiple of 6 bytes",
        frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00"),
        FRAME_SIZE_ERROR,
    ),
    ("6.5.2 ENABLE_PUSH of 2", settings((0x2, 2)), PROTOCOL_ERROR),
    ("6.5.2 INITIAL_WINDOW_SIZE over 2^31-1", settings((0x4, 2**31)), FLOW_CONTROL_ERROR),
    ("6.5.2 MAX_FRAME_SIZE below 16,384", settings((0x5, 16383)), PROTOCOL_ERROR),
    ("6.5.2 MAX_FRAME_SIZE over 2^24-1", settings((0x5, 2**24)), PROTOCOL_ERROR),
    # §6.7 PING.
    ("6.7 PING on a stream", frame(PING, 0, 1, b"12345678"), PROTOCOL_ERROR),
    ("6.7 PING of 6 bytes", frame(PING, 0, 0, b"123456"), FRAME_SIZE_ERROR),
    # §6.8 GOAWAY.
    ("6.8 GOAWAY on a stream", frame(GOAWAY, 0, 1, b"\x00" * 8), PROTOCOL_ERROR),
    # §6.9 WINDOW_UPDATE.
    ("6.9 WINDOW_UPDATE of 0 on the connection", window_update(0, 0), PROTOCOL_ERROR),
    ("6.9 WINDOW_UPDATE of 3 bytes", frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), FRAME_SIZE_ERROR),
    ("6.9.1 the connection window over 2^31-1", window_update(0, 2**31 - 1), FLOW_CONTROL_ERROR),
    # §6.10 CONTINUATION.
    (
        "6.10 CONTINUATION on another stream",
        frame(HEADERS, 0, 1, block()) + frame(CONTINUATION, END_HEADERS, 3, b""),
        PROTOCOL_ERROR,
    ),
    ("6.10 CONTINUATION on stream 0", frame(CONTINUATION, END_HEADERS, 0, b""), PROTOCOL_ERROR),
    # §8.4: a client cannot push.
    (
        "8.4 PUSH_PROMISE from the client",
        post(1) + frame(PUSH_PROMISE, END_HEADERS, 1, b"\x00\x00\x00\x02" + block()),
        PROTOCOL_ERROR,
    ),
    # RFC 7541.
    (
        "HPACK 2.3.3 an index past the tables",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84\xbf"),
        COMPRESSION_ERROR,
    ),
    (
        "HPACK 4.2 a table size over the setting",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe2\x1f" + block()),
        COMPRESSION_ERROR,
    ),
    (
        "HPACK 4.2 a table size update after a field",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x20" + block()[1:]),
        COMPRESSION_ERROR,
    ),
    (
        "HPACK 5.2 Huffman padding over 7 bits",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84\x41\x82\x1f\xff"),
        COMPRESSION_ERROR,
    ),
    (
        "HPACK 5.2 Huffman padding not the EOS prefix",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84\x41\x81\x00"),
        COMPRESSION_ERROR,
    ),
    (
        "HPACK 5.2 the EOS symbol in a string",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84\x41\x84\xff\xff\xff\xff"),
        COMPRESSION_ERROR,
    ),
]

# (case, frames, the stream error's stream and code).  §5.4.2: RST_STREAM; the connection
# carries on (a PING afterwards is answered).
STREAM_ERRORS = [
    (
        "5.1 DATA on a half-closed (remote) stream",
        post(1, end_stream=True) + frame(DATA, 0, 1, b"x"),
        1,
        STREAM_CLOSED,
    ),
    (
        "5.3.1 HEADERS depending on itself",
        frame(
            HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, b"\x00\x00\x00\x01\x10" + block()
        ),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "5.3.1 PRIORITY depending on itself",
        frame(PRIORITY, 0, 1, b"\x00\x00\x00\x01\x10"),
        1,
        PROTOCOL_ERROR,
    ),
    ("6.3 PRIORITY of 4 bytes", frame(PRIORITY, 0, 1, b"\x00\x00\x00\x03"), 1, FRAME_SIZE_ERROR),
    ("6.9 WINDOW_UPDATE of 0 on a stream", post(1) + window_update(1, 0), 1, PROTOCOL_ERROR),
    (
        "6.9.1 a stream window over 2^31-1",
        post(1) + window_update(1, 2**31 - 1),
        1,
        FLOW_CONTROL_ERROR,
    ),
    (
        "6.9.1 DATA beyond the stream window",
        post(1, path="/hold")
        + b"".join(frame(DATA, 0, 1, b"d" * 16384) for _ in range(4))
        + frame(DATA, 0, 1, b"d" * 10),
        1,
        FLOW_CONTROL_ERROR,
    ),
    # §8.1.1, §8.2, §8.3: malformed requests.
    (
        "8.2 an uppercase field name",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block(extra=[("X-Upper", "1")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.2.2 a connection-specific field",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block(extra=[("connection", "keep-alive")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.2.2 te other than trailers",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block(extra=[("te", "gzip")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.3 a pseudo-header after a regular field",
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            block([(":method", "GET"), (":scheme", "http"), ("x", "1"), (":path", "/")]),
        ),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.3 an unknown pseudo-header",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block(extra=[(":foo", "1")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.3 a response pseudo-header in a request",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block(extra=[(":status", "200")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.3.1 no :method",
        frame(HEADERS, END_HEADERS | END_STREAM, 1, block([(":scheme", "http"), (":path", "/")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.3.1 an empty :path",
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            block([(":method", "GET"), (":scheme", "http"), (":path", "")]),
        ),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.3.1 :method twice",
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            block([(":method", "GET"), (":method", "GET"), (":scheme", "http"), (":path", "/")]),
        ),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.1 trailers with a pseudo-header",
        post(1)
        + frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack.Encoder().encode([(":path", "/")])),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.1.1 content-length more than the DATA",
        frame(
            HEADERS,
            END_HEADERS,
            1,
            block(
                [(":method", "POST"), (":scheme", "http"), (":path", "/")],
                extra=[("content-length", "5")],
            ),
        )
        + frame(DATA, END_STREAM, 1, b"abc"),
        1,
        PROTOCOL_ERROR,
    ),
    (
        "8.1.1 content-length less than the DATA",
        frame(
            HEADERS,
            END_HEADERS,
            1,
            block(
                [(":method", "POST"), (":scheme", "http"), (":path", "/")],
                extra=[("content-length", "1")],
            ),
        )
        + frame(DATA, END_STREAM, 1, b"abc"),
        1,
        PROTOCOL_ERROR,
    ),
]

# (case, frames): ignored, the connection carries on.
IGNORED = [
    ("4.1 an unknown frame type", frame(0x20, 0, 0, b"x")),
    ("4.1 unknown flags on PING", frame(PING, 0xFE & ~ACK, 0, b"12345678")),
    (
        "4.1 the reserved bit of the stream id",
        frame(PING, 0, 0, b"12345678")[:5] + b"\x80\x00\x00\x00" + b"12345678",
    ),
    ("5.5 an unknown frame type on a stream", frame(0x20, 0, 1, b"x")),
    ("6.5 an unknown setting", settings((0xFF, 1))),
    ("6.7 a PING ACK is not answered", frame(PING, ACK, 0, b"12345678")),
    ("6.9 WINDOW_UPDATE on a closed stream", get(1) + window_update(1, 10)),
    ("6.4 RST_STREAM on a closed stream", get(1) + rst(1)),
]


@pytest.mark.parametrize(
    ("sent", "code"), [c[1:] for c in CONNECTION_ERRORS], ids=[c[0] for c in CONNECTION_ERRORS]
)
def test_connection_errors(wire: Wire, sent: bytes, code: int) -> None:
    wire.send(sent)
    wire.expect("goaway", code)
    wire.expect_closed()


@pytest.mark.parametrize(
    ("sent", "stream_id", "code"), [c[1:] for c in STREAM_ERRORS], ids=[c[0] for c in STREAM_ERRORS]
)
def test_stream_errors(wire: Wire, sent: bytes, stream_id: int, code: int) -> None:
    wire.send(sent)
    wire.expect("rst", stream_id, code)
    wire.send(PING_PROBE)
    wire.expect("ping")


@pytest.mark.parametrize("sent", [c[1] for c in IGNORED], ids=[c[0] for c in IGNORED])
def test_ignored(wire: Wire, sent: bytes) -> None:
    wire.send(sent + PING_PROBE)
    wire.expect("ping")
    wire.send(get(11))
    wire.expect("response", 11)


def test_3_4_an_invalid_preface_closes_the_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings())
        deadline = time.monotonic() + 5
        data = b""
        closed = False
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    assert closed
    # Not HTTP/2 at all: it is answered as the HTTP/1.1 it might be, with an error.
    assert data.startswith(b"HTTP/1.1 505 ")


def test_6_5_3_settings_are_acknowledged(wire: Wire) -> None:
    wire.send(settings((0x3, 10)))
    deadline = time.monotonic() + 5
    while True:
        got = wire.next_frame(deadline)
        assert got is not None, "no SETTINGS ACK"
        if got[0] == SETTINGS and got[1] & ACK:
            break


def test_6_9_2_a_smaller_initial_window_holds_the_response_until_window_update(wire: Wire) -> None:
    # SETTINGS_INITIAL_WINDOW_SIZE 1: the 4-byte body goes one byte per WINDOW_UPDATE.
    wire.send(settings((0x4, 1)) + get(1))
    wire.expect("response", 1)
    body = b""
    give_up = time.monotonic() + 10
    while not body.endswith(b"ok:0"):
        assert time.monotonic() < give_up, body
        got = wire.next_frame(time.monotonic() + 0.1)
        if got is None:  # the server waits for the window: open it by one byte
            wire.send(window_update(1, 1) + window_update(0, 1))
            continue
        if got[0] == DATA:
            assert len(got[3]) <= 1
            body += got[3]
    assert body == b"ok:0"


def test_5_1_2_streams_over_the_limit_are_refused(wire: Wire) -> None:
    # The server's limit is 100 (H2Config): the 101st concurrent stream is refused.
    wire.send(b"".join(post(2 * i + 1) for i in range(101)))
    wire.expect("rst", 201, REFUSED_STREAM)
