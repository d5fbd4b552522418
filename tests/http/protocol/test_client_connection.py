"""The sans-IO client connection: requests framed, responses read, one joint state; no sockets.

Every response is fed whole, one byte at a time and split at every offset (``feeds``), and
the connection must end in the same state with the same events each way.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from thor.http import error
from thor.http.protocol import Body, End, Event, Invalid, ResponseHead
from thor.http.protocol.client_connection import ClientConnection, ClientState

from .helpers import normalize, splits

HOST = [(b"Host", b"example.com")]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def receive(conn: ClientConnection, pieces: Sequence[bytes], eof: bool = False) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events += conn.receive_data(piece)
    if eof:
        events += conn.receive_eof()
    return events


def get(conn: ClientConnection, method: bytes = b"GET", **kw: Any) -> bytes:
    return conn.start_bodiless(method, b"/", HOST, **kw)


def feeds(
    make: Any, data: bytes, *, eof: bool = False
) -> tuple[list[Any], ClientState, ClientConnection]:
    """Events and final state for ``data``, the same however it is split."""
    results = []
    for pieces in splits(data):
        conn = make()
        events = receive(conn, pieces, eof)
        results.append((normalize(events), conn.state, conn))
    first = results[0]
    for got in results[1:]:
        assert got[:2] == first[:2]
    return first


def fresh_get() -> ClientConnection:
    conn = ClientConnection()
    get(conn)
    return conn


# --- whole exchanges ------------------------------------------------------------------------


def test_get_keep_alive_back_to_idle() -> None:
    conn = ClientConnection()
    assert conn.state is ClientState.IDLE
    data = get(conn)
    assert data == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    assert conn.state is ClientState.AWAITING
    events, state, _ = feeds(fresh_get, OK)
    assert [type(e) for e in events] == [ResponseHead, Body, End]
    assert state is ClientState.IDLE


def test_two_requests_on_one_connection() -> None:
    conn = ClientConnection()
    for i in range(2):
        get(conn, b"GET" if i else b"HEAD")
        events = conn.receive_data(OK if i else b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        assert type(events[-1]) is End
        assert conn.state is ClientState.IDLE


def test_response_close_closes() -> None:
    response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    events, state, _ = feeds(fresh_get, response)
    assert [type(e) for e in events] == [ResponseHead, Body, End]
    assert state is ClientState.CLOSED


def test_close_delimited_ends_at_eof() -> None:
    events, state, _ = feeds(fresh_get, b"HTTP/1.1 200 OK\r\n\r\nuntil the end", eof=True)
    assert [type(e) for e in events] == [ResponseHead, Body, End]
    assert state is ClientState.CLOSED


def test_request_close_closes_framed_or_remembered() -> None:
    """RFC 9112 §9.6: no request after one that says close (the second comes from the memo)."""
    for _ in range(2):
        conn = ClientConnection()
        conn.start_bodiless(b"GET", b"/bye", [*HOST, (b"Connection", b"TE, close")])
        conn.receive_data(OK)
        assert conn.state is ClientState.CLOSED


@pytest.mark.parametrize(
    "after", [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n\r\n", b"garbage\r\n\r\n"]
)
def test_trailing_bytes_after_the_response_are_not_reused(after: bytes) -> None:
    """RFC 9112 §9.3: bytes after a complete response (no request asked for them)."""
    events, state, _ = feeds(fresh_get, OK + after)
    assert state is ClientState.CLOSED
    assert [type(e) for e in events][:3] == [ResponseHead, Body, End]


def test_bytes_while_idle_close() -> None:
    conn = ClientConnection()
    assert conn.receive_data(b"H") == []
    assert conn.state is ClientState.CLOSED


def test_chunked_request_body() -> None:
    conn = ClientConnection()
    head = conn.start_request(b"POST", b"/", HOST)
    assert b"Transfer-Encoding: chunked" in head
    assert conn.state is ClientState.SENDING
    assert conn.send_body(b"abc") == b"3\r\nabc\r\n"
    assert conn.end_request() == b"0\r\n\r\n"
    assert conn.state is ClientState.AWAITING
    conn.receive_data(OK)
    assert conn.state is ClientState.IDLE


def test_short_content_length_body_is_not_reused() -> None:
    conn = ClientConnection()
    conn.start_request(b"POST", b"/", [*HOST, (b"Content-Length", b"5")])
    conn.send_body(b"ab")
    conn.end_request()
    conn.receive_data(OK)
    assert conn.state is ClientState.CLOSED


# --- early responses and 100-continue -------------------------------------------------------


def test_early_response_then_end() -> None:
    conn = ClientConnection()
    conn.start_request(b"POST", b"/", HOST)
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
    assert conn.state is ClientState.EARLY
    conn.send_body(b"still allowed")
    conn.end_request()
    assert conn.state is ClientState.RECEIVING
    conn.receive_data(b"lo")
    assert conn.state is ClientState.IDLE


def test_early_response_ending_first_closes() -> None:
    conn = ClientConnection()
    conn.start_request(b"POST", b"/", HOST)
    conn.receive_data(OK)
    assert conn.state is ClientState.CLOSED


def expecting() -> ClientConnection:
    conn = ClientConnection()
    conn.start_request(b"PUT", b"/", [*HOST, (b"Expect", b"100-continue")], expect_continue=True)
    return conn


def test_100_continue_releases_the_body() -> None:
    conn = expecting()
    assert conn.state is ClientState.WAITING_100
    assert conn.body_held
    with pytest.raises(error.OutputStateError):
        conn.send_body(b"too soon")
    events, state, conn = feeds(expecting, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert [e.status for e in events] == [100]
    assert state is ClientState.SENDING
    assert not conn.body_held
    conn.send_body(b"x")
    conn.end_request()
    conn.receive_data(OK)
    assert conn.state is ClientState.IDLE


def test_interim_heads_then_the_whole_response_in_one_read() -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
    events, state, _ = feeds(fresh_get, hints + hints + OK)
    assert [type(e) for e in events] == [ResponseHead, ResponseHead, ResponseHead, Body, End]
    assert state is ClientState.IDLE


def test_100_continue_timeout_is_the_callers() -> None:
    conn = expecting()
    conn.continue_body()  # the IO layer's timer
    assert conn.state is ClientState.SENDING
    with pytest.raises(error.OutputStateError):
        conn.continue_body()


def test_final_response_instead_of_100_refuses_the_body() -> None:
    events, state, conn = feeds(
        expecting, b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"
    )
    assert [type(e) for e in events] == [ResponseHead, End]
    assert state is ClientState.CLOSED  # the request could not be completed on it
    conn = expecting()
    conn.receive_data(b"HTTP/1.1 401 No\r\nContent-Length: 3\r\n\r\n")
    assert conn.state is ClientState.REFUSED
    assert conn.body_held


def test_expectation_without_a_body_waits_for_nothing() -> None:
    conn = ClientConnection()
    conn.start_request(b"GET", b"/", HOST, has_body=False, expect_continue=True)
    assert conn.state is ClientState.SENDING
    assert conn.end_request() == b""
    assert conn.state is ClientState.AWAITING


# --- protocol switch ------------------------------------------------------------------------


def upgrading() -> ClientConnection:
    conn = ClientConnection()
    get(conn, upgrade=True)
    return conn


def test_101_to_an_upgrade_switches_with_the_leftover() -> None:
    events, state, conn = feeds(upgrading, SWITCH + b"\x81\x02hi")
    assert [type(e) for e in events] == [ResponseHead]
    assert events[0].status == 101
    assert state is ClientState.SWITCHED
    assert conn.take_leftover() == b"\x81\x02hi"
    assert conn.receive_data(b"more") == []
    assert conn.take_leftover() == b"more"
    conn.receive_eof()
    assert conn.state is ClientState.SWITCHED


def test_2xx_to_connect_switches() -> None:
    def connecting() -> ClientConnection:
        conn = ClientConnection()
        conn.start_bodiless(b"CONNECT", b"example.com:443", HOST)
        return conn

    _, state, conn = feeds(connecting, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03")
    assert state is ClientState.SWITCHED
    assert conn.take_leftover() == b"\x16\x03"


@pytest.mark.parametrize(
    "make",
    [fresh_get, expecting],
    ids=["plain", "upgrade-before-the-body"],
)
def test_101_nobody_asked_for_is_an_error(make: Any) -> None:
    events, state, _ = feeds(make, SWITCH + b"junk")
    assert events == [("Invalid", error.UpstreamError)]
    assert state is ClientState.CLOSED


def test_101_to_an_upgrade_with_a_body_still_sending_is_an_error() -> None:
    conn = ClientConnection()
    conn.start_request(b"POST", b"/", HOST, upgrade=True)
    events = conn.receive_data(SWITCH)
    assert isinstance(events[-1], Invalid)
    assert conn.state is ClientState.CLOSED


def test_an_upgrade_refused_is_a_plain_response() -> None:
    conn = upgrading()
    conn.receive_data(OK)
    assert conn.state is ClientState.IDLE


# --- bad framing and illegal transitions ----------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ],
)
def test_bad_framing_closes(response: bytes) -> None:
    events, state, _ = feeds(fresh_get, response)
    assert events[-1][0] == "Invalid"
    assert state is ClientState.CLOSED


def test_truncated_response_closes() -> None:
    events, state, _ = feeds(
        fresh_get, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhel", eof=True
    )
    assert events[-1] == ("Invalid", error.IncompleteMessageError)
    assert state is ClientState.CLOSED


def test_eof_while_idle_closes_without_events() -> None:
    conn = ClientConnection()
    assert conn.receive_eof() == []
    assert conn.state is ClientState.CLOSED


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("nothing", "end"),
        ("nothing", "body"),
        ("nothing", "continue"),
        ("get", "get"),
        ("get", "post"),
        ("get", "end"),
        ("closed", "get"),
    ],
)
def test_illegal_transitions_raise_before_framing(setup: str, action: str) -> None:
    conn = ClientConnection()
    if setup == "get":
        get(conn)
    elif setup == "closed":
        conn.close()
    before = conn.state
    actions = {
        "end": conn.end_request,
        "body": lambda: conn.send_body(b"x"),
        "continue": conn.continue_body,
        "get": lambda: get(conn),
        "post": lambda: conn.start_request(b"POST", b"/", HOST),
    }
    with pytest.raises(error.OutputStateError):
        actions[action]()
    assert conn.state is before


def test_the_table_has_one_target_per_action_and_state() -> None:
    for state in ClientState:
        assert state.next["close"] is ClientState.CLOSED
    assert ClientState.IDLE.next.keys() == {"start", "start_expect", "start_bodiless", "close"}
    assert "final" not in ClientState.IDLE.next
    assert ClientState.SWITCHED.next.keys() == {"close"}


def test_received_tracks_the_request_in_flight() -> None:
    conn = ClientConnection()
    get(conn)
    assert not conn.received
    conn.receive_data(OK)
    assert conn.received
    get(conn)
    assert not conn.received
    assert repr(conn) == "<ClientConnection AWAITING>"


def test_bodiless_requests_are_framed_once() -> None:
    first, second = ClientConnection(), ClientConnection()
    headers = [*HOST, (b"X-Once", b"1")]
    a = first.start_bodiless(b"GET", b"/once", headers)
    b = second.start_bodiless(b"GET", b"/once", headers)
    assert a is b
    second.receive_data(OK)
    assert second.state is ClientState.IDLE


def test_a_head_after_close_is_unexpected() -> None:
    conn = ClientConnection()
    get(conn)
    conn.close()
    events = conn.receive_data(OK)
    assert normalize(events) == [("Invalid", error.UpstreamError)]
    assert conn.state is ClientState.CLOSED


def test_the_docs_example_runs() -> None:
    doc = Path(__file__).resolve().parents[3] / "docs" / "http-protocol.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    example = next(b for b in blocks if "ClientConnection()" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(doc), "exec"), {})
    assert out.getvalue().splitlines() == [
        "ClientState.IDLE",
        "True",
        "ClientState.SWITCHED b'new bytes'",
    ]
