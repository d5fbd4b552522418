"""The closing handshake (RFC 6455 §7) from each side, and the state table."""

from __future__ import annotations

import pytest

from thor.websocket.protocol import (
    CloseReceived,
    ConnectionLost,
    ConnectionState,
    TextMessage,
    WebSocketStateError,
)
from thor.websocket.protocol.state import transition

from .helpers import client, client_frame, server, server_frame

OPEN = ConnectionState.OPEN
CLOSING = ConnectionState.CLOSING
REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
CLOSED = ConnectionState.CLOSED


def test_server_closes_first() -> None:
    s, c = server(), client()
    frame = s.close(1001, "going away")
    assert frame == server_frame(0x8, b"\x03\xe9going away")
    assert s.state is CLOSING
    # The peer may still send data before it sees our close (§7.1.2).
    assert s.receive_data(client_frame(0x1, b"late")) == [TextMessage("late")]
    assert c.receive_data(frame) == [CloseReceived(1001, "going away")]
    assert c.state is REMOTE_CLOSING
    answer = c.close()  # echoes 1001
    assert c.state is CLOSED
    assert s.receive_data(answer) == [CloseReceived(1001, "")]
    assert s.state is CLOSED
    assert (s.close_code, c.close_code, c.close_reason) == (1001, 1001, "going away")


def test_client_closes_first() -> None:
    s, c = server(), client()
    assert s.receive_data(c.close()) == [CloseReceived(1000, "")]
    assert c.state is CLOSING
    assert s.state is REMOTE_CLOSING
    assert c.receive_data(s.close(1000, "ok")) == [CloseReceived(1000, "ok")]
    assert (s.state, c.state) == (CLOSED, CLOSED)


def test_an_empty_close_is_1005_and_answered_empty() -> None:
    s = server()
    assert s.receive_data(client_frame(0x8)) == [CloseReceived(1005, "")]
    assert s.close() == server_frame(0x8, b"")


def test_data_may_be_sent_after_the_peers_close_until_ours() -> None:
    s = server()
    s.receive_data(client_frame(0x8, b"\x03\xe8"))
    assert s.send_text("last words") == server_frame(0x1, b"last words")
    s.close()
    for send in (lambda: s.send_text("x"), lambda: s.ping(), lambda: s.close()):
        with pytest.raises(WebSocketStateError):
            send()


def test_nothing_is_sent_after_our_close() -> None:
    s = server()
    s.close()
    with pytest.raises(WebSocketStateError, match="CLOSING"):
        s.send_bytes(b"x")
    with pytest.raises(WebSocketStateError, match="send_close in state CLOSING"):
        s.close()


def test_bytes_after_the_peers_close_are_ignored() -> None:
    s = server()
    events = s.receive_data(client_frame(0x8, b"\x03\xe8") + client_frame(0x1, b"x"))
    assert events == [CloseReceived(1000, "")]
    assert s.receive_data(client_frame(0x1, b"y")) == []


def test_a_failure_after_our_close_sends_no_second_close() -> None:
    s = server()
    s.close()
    [event] = s.receive_data(client_frame(0x3))
    assert s.fail(event.code) == b""  # type: ignore[attr-defined]
    assert s.state is CLOSED


def test_eof_before_the_handshake_ends_is_1006() -> None:
    s = server()
    assert s.receive_eof() == [ConnectionLost(1006)]
    assert s.state is CLOSED
    assert s.receive_eof() == []


def test_close_arguments_are_checked() -> None:
    s = server()
    for code in (1005, 1006, 999, 5000):
        with pytest.raises(ValueError, match="not a close code"):
            s.close(code)
    with pytest.raises(ValueError, match="123 bytes"):
        s.close(1000, "x" * 124)
    s.receive_data(client_frame(0x8))
    with pytest.raises(ValueError, match="needs a close code"):
        s.close(None, "reason")
    assert s.state is REMOTE_CLOSING


def test_the_transition_table() -> None:
    assert transition(OPEN, "send_close") is CLOSING
    assert transition(OPEN, "receive_close") is REMOTE_CLOSING
    assert transition(CLOSING, "receive_close") is CLOSED
    assert transition(REMOTE_CLOSING, "send_close") is CLOSED
    for state in ConnectionState:
        assert transition(state, "fail") is CLOSED
        assert transition(state, "lost") is CLOSED
    for state, action in [
        (CLOSED, "send_close"),
        (CLOSING, "send_close"),
        (CLOSED, "receive_close"),
    ]:
        with pytest.raises(WebSocketStateError):
            transition(state, action)


def test_role_is_checked() -> None:
    from thor.websocket.protocol import Connection

    with pytest.raises(ValueError, match="peer"):
        Connection("peer")
    assert repr(server()) == "<Connection server OPEN>"
