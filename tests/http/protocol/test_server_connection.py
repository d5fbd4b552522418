"""The sans-IO server connection: its joint table driven without sockets.

Each input is fed whole, one byte at a time and split at every offset (``splits``), with
trailing data where the case has some; the driver below does what the IO side does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from thor.http.error import OutputStateError
from thor.http.protocol import Body, Cycle, End, ParserState, RequestHead, ServerConnection
from thor.http.protocol.server_connection import CONTINUE, DELIVERS

from .helpers import splits

Answer = Callable[["Driver"], None]

GET = b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n"
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
FRAME = b"\x81\x02hi"  # a WebSocket text frame the client sent right after its request


def ok(driver: Driver) -> None:
    """Answer the current request with a 2-byte body."""
    conn = driver.conn
    out = conn.start_response(200, b"OK", [(b"Content-Length", b"2")])
    assert conn.writer is not None
    out += conn.writer.body(b"ok")
    driver.out.append(out + conn.end_response([]))


def later(driver: Driver) -> None:
    """Answer nothing yet (the application answers from a timer, say)."""


class Driver:
    """Feeds a ServerConnection and delivers what ``DELIVERS`` lets through, as the IO does;
    ``answer`` is called at each request's end."""

    def __init__(self, answer: Answer = ok) -> None:
        self.conn = ServerConnection()
        self.answer = answer
        self.out: list[bytes] = []
        self.seen: list[Any] = []

    def feed(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.deliver()

    def deliver(self) -> None:
        conn = self.conn
        while conn.pending and conn.pending[0].__class__ in DELIVERS[conn.state]:
            event = conn.pending.pop(0)
            if isinstance(event, RequestHead):
                conn.start_request(event)
                self.seen.append(("head", event.target))
                if conn.expecting_continue:
                    self.out.append(conn.send_continue())
            elif isinstance(event, Body):
                if self.seen[-1][0] == "body":
                    self.seen[-1] = ("body", self.seen[-1][1] + event.data)
                else:
                    self.seen.append(("body", event.data))
            elif isinstance(event, End):
                conn.end_request()
                self.seen.append(("end",))
                self.answer(self)
            else:
                self.seen.append(("invalid", type(event.error).__name__))
                conn.close()


def drive(data: bytes, answer: Answer = ok) -> list[Driver]:
    """A driver per way of splitting ``data``, all fed; asserts they saw and wrote the same."""
    drivers = []
    for pieces in splits(data):
        driver = Driver(answer)
        for piece in pieces:
            driver.feed(piece)
        drivers.append(driver)
    first = drivers[0]
    for other in drivers[1:]:
        assert (other.seen, b"".join(other.out), other.conn.state) == (
            first.seen,
            b"".join(first.out),
            first.conn.state,
        )
    return drivers


def test_keep_alive_serves_requests_in_order() -> None:
    driver = drive(GET % b"1" + GET % b"2")[0]
    assert driver.seen == [("head", b"/1"), ("end",), ("head", b"/2"), ("end",)]
    assert b"".join(driver.out).count(b"HTTP/1.1 200 OK\r\n") == 2
    assert driver.conn.state is Cycle.IDLE
    assert driver.conn.is_idle


def test_a_pipelined_request_waits_for_the_response_before_it() -> None:
    for driver in drive(GET % b"1" + GET % b"2" + b"GET /3 HT", later):
        conn = driver.conn
        assert driver.seen == [("head", b"/1"), ("end",)]
        assert conn.state is Cycle.READ
        assert [type(e) for e in conn.pending] == [RequestHead, End]  # held, not dropped
        driver.answer = ok
        ok(driver)  # the response to /1 ...
        driver.deliver()  # ... lets /2 through; /3 is still being read
        assert driver.seen[2:] == [("head", b"/2"), ("end",)]
        assert conn.parser.state is ParserState.HEAD
        assert not conn.is_idle


@pytest.mark.parametrize(
    ("request_bytes", "state"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Cycle.IDLE),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", Cycle.CLOSED),
        (b"GET / HTTP/1.0\r\n\r\n", Cycle.CLOSED),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Cycle.IDLE),
    ],
)
def test_keep_alive_or_close_after_the_response(request_bytes: bytes, state: Cycle) -> None:
    driver = drive(request_bytes)[0]
    assert driver.conn.state is state
    assert (b"Connection: close\r\n" in driver.out[0]) is (state is Cycle.CLOSED)


def test_close_asked_by_the_application_ends_the_connection() -> None:
    conn = ServerConnection()
    head, _ = conn.receive_data(GET % b"")
    conn.start_request(head)  # type: ignore[arg-type]
    conn.end_request()
    conn.start_response(200, b"OK", [(b"Content-Length", b"0")])
    conn.end_response([], close=True)
    assert conn.state is Cycle.CLOSED


def test_answering_before_the_body_arrived_closes_after_the_response() -> None:
    conn = ServerConnection()
    (head,) = conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")[:1]
    conn.start_request(head)  # type: ignore[arg-type]
    assert conn.state is Cycle.READING
    out = conn.start_response(413, b"Too Big", [(b"Content-Length", b"0")])
    assert conn.state is Cycle.SENDING_EARLY
    assert b"Connection: close\r\n" in out  # the rest of the body would read as a request
    conn.end_response([])
    assert conn.state is Cycle.CLOSED
    assert DELIVERS[conn.state] == frozenset()


EXPECT = b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"


def test_100_continue_is_sent_when_the_client_waits_for_it() -> None:
    # The driver sends 100 when the head is delivered; the body follows, then the answer.
    driver = drive(EXPECT + b"abc" + GET % b"next")[0]
    assert driver.seen == [
        ("head", b"/f"),
        ("body", b"abc"),
        ("end",),
        ("head", b"/next"),
        ("end",),
    ]
    assert driver.out[0] == CONTINUE
    assert b"".join(driver.out[1:]).count(b"HTTP/1.1 200 OK") == 2


def test_no_100_continue_once_the_response_started() -> None:
    conn = ServerConnection()
    (head,) = conn.receive_data(EXPECT)
    conn.start_request(head)  # type: ignore[arg-type]
    assert conn.expecting_continue
    conn.start_response(417, b"Expectation Failed", [(b"Content-Length", b"0")])
    assert not conn.expecting_continue
    with pytest.raises(OutputStateError):
        conn.send_continue()


def test_an_interim_response_stands_for_100_continue() -> None:
    conn = ServerConnection()
    (head,) = conn.receive_data(EXPECT)
    conn.start_request(head)  # type: ignore[arg-type]
    assert conn.send_nonfinal(103, b"Early Hints", [(b"Link", b"</s.css>")]).startswith(
        b"HTTP/1.1 103 Early Hints\r\n"
    )
    assert conn.state is Cycle.READING


def test_the_body_sent_without_waiting_ends_the_expectation() -> None:
    conn = ServerConnection()
    head, _, _ = conn.receive_data(EXPECT + b"abc")
    conn.start_request(head)  # type: ignore[arg-type]
    conn.end_request()
    assert conn.state is Cycle.READ
    with pytest.raises(OutputStateError):
        conn.send_continue()


def switch(driver: Driver) -> None:
    """Answer 101 to the Upgrade request."""
    driver.out.append(
        driver.conn.start_response(
            101, b"Switching Protocols", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
        )
    )


def test_101_hands_over_the_bytes_read_past_the_upgrade_request() -> None:
    for driver in drive(UPGRADE + FRAME + GET % b"not-http", switch):
        conn = driver.conn
        assert driver.seen == [("head", b"/chat"), ("end",)]  # nothing parsed past it
        assert conn.state is Cycle.SWITCHING
        assert driver.out[0].startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert conn.take_over() == FRAME + GET % b"not-http"
        assert conn.state is Cycle.SWITCHED
        assert conn.receive_data(b"more") == []  # later bytes stay the new protocol's
        assert conn.parser.take_leftover() == b"more"


def test_an_upgrade_the_application_ignores_is_plain_http() -> None:
    # RFC 9110 §7.8: the server may ignore Upgrade; what followed is then HTTP again.
    driver = drive(UPGRADE + GET % b"2")[0]
    assert driver.seen == [("head", b"/chat"), ("end",), ("head", b"/2"), ("end",)]
    assert driver.conn.state is Cycle.IDLE
    assert driver.conn.pending == []


def test_101_without_take_over_closes() -> None:
    driver = drive(UPGRADE, switch)[0]
    driver.conn.end_response([])
    assert driver.conn.state is Cycle.CLOSED


@pytest.mark.parametrize(
    "request_bytes",
    [
        GET % b"",  # no Upgrade at all
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",  # not in Connection
        b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",  # §7.8: 1.0
    ],
)
def test_101_to_a_request_that_asked_for_no_upgrade_switches_nothing(
    request_bytes: bytes,
) -> None:
    conn = ServerConnection()
    head, _ = conn.receive_data(request_bytes + GET % b"next")[:2]
    conn.start_request(head)  # type: ignore[arg-type]
    conn.end_request()
    conn.start_response(101, b"Switching Protocols", [(b"Upgrade", b"websocket")])
    assert conn.state is Cycle.SENDING
    with pytest.raises(OutputStateError):
        conn.take_over()
    conn.end_response([])
    assert conn.state is Cycle.CLOSED  # a 101 head means the connection cannot go on


def test_upgrade_with_a_body_is_held_after_its_body() -> None:
    request = (
        b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\n"
    )
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    for driver in drive(request + b"abc" + preface, switch):
        assert driver.seen == [("head", b"/up"), ("body", b"abc"), ("end",)]
        assert driver.conn.take_over() == preface


CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


def test_a_2xx_to_connect_makes_a_tunnel() -> None:
    hello = b"\x16\x03\x01 tls client hello"
    for pieces in splits(CONNECT + hello):
        conn = ServerConnection()
        events: list[Any] = []
        for piece in pieces:
            events += conn.receive_data(piece)
            conn.pending = []
        assert [type(e) for e in events] == [RequestHead]  # no End: the rest is the tunnel
        conn.start_request(events[0])
        assert conn.state is Cycle.READING
        head = conn.start_response(200, b"Connection Established", [])
        assert head == b"HTTP/1.1 200 Connection Established\r\n\r\n"
        assert conn.state is Cycle.SWITCHING
        assert conn.take_over() == hello


def test_a_refused_connect_closes() -> None:
    conn = ServerConnection()
    (head,) = conn.receive_data(CONNECT + b"tunnel bytes")
    conn.start_request(head)  # type: ignore[arg-type]
    conn.start_response(405, b"Method Not Allowed", [(b"Content-Length", b"0")])
    with pytest.raises(OutputStateError):
        conn.take_over()
    conn.end_response([])
    assert conn.state is Cycle.CLOSED


def test_an_invalid_request_after_a_complete_one_waits_for_its_response() -> None:
    driver = drive(GET % b"1" + b"BAD\r\n\r\n", later)[0]
    assert driver.seen == [("head", b"/1"), ("end",)]
    ok(driver)
    driver.deliver()
    assert driver.seen[-1] == ("invalid", "RequestLineError")
    assert driver.conn.state is Cycle.CLOSED


def test_the_eof_after_a_held_upgrade_request_reaches_the_http_that_follows() -> None:
    conn = ServerConnection()
    head, _ = conn.receive_data(UPGRADE + b"GET / HT")
    conn.pending = []
    assert conn.receive_eof() == []  # held: the response decides what the bytes are
    conn.start_request(head)  # type: ignore[arg-type]
    conn.end_request()
    conn.start_response(200, b"OK", [(b"Content-Length", b"0")])
    conn.end_response([])
    assert [type(e).__name__ for e in conn.pending] == ["Invalid"]  # the truncated request


@pytest.mark.parametrize(
    "calls",
    [
        ["end_request"],
        ["start_request", "end_request", "end_request"],
        ["end_response"],
        ["take_over"],
        ["send_continue"],
        ["start_request", "start_request"],
        ["start_request", "start_response", "start_response"],
    ],
)
def test_calls_out_of_order_raise(calls: list[str]) -> None:
    conn = ServerConnection()
    (head,) = conn.receive_data(EXPECT)
    args: dict[str, tuple[Any, ...]] = {
        "start_request": (head,),
        "start_response": (200, b"OK", []),
        "end_response": ([],),
    }
    *before, last = calls
    for name in before:
        getattr(conn, name)(*args.get(name, ()))
    with pytest.raises(OutputStateError):
        getattr(conn, last)(*args.get(last, ()))
