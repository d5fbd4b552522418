"""Property tests: any bytes give events or one final ProtocolError; splits do not matter."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thor.websocket.protocol import Connection, Deflate, Event, ProtocolError

from .helpers import client_frame, counter_random

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(conn: Connection, pieces: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events.extend(conn.receive_data(piece))
    return events


@SETTINGS
@given(st.binary(max_size=300), st.booleans(), st.booleans())
def test_any_bytes_give_events_or_a_final_protocol_error(
    data: bytes, as_client: bool, deflate: bool
) -> None:
    conn = Connection(
        "client" if as_client else "server",
        deflate=Deflate() if deflate else None,
        max_message_size=200,
        random=counter_random,
    )
    events = run(conn, [data])
    errors = [i for i, e in enumerate(events) if isinstance(e, ProtocolError)]
    assert errors in ([], [len(events) - 1])
    if errors:
        assert 1000 <= events[-1].code <= 1011  # type: ignore[attr-defined]
        assert conn.fail(events[-1].code)  # type: ignore[attr-defined]


FRAMES = st.sampled_from(
    [
        client_frame(0x1, "héllo".encode()),
        client_frame(0x2, b"\x00" * 130),
        client_frame(0x9, b"p"),
        client_frame(0x1, b"a\xc3", fin=False) + client_frame(0x0, b"\xa9"),
        client_frame(0x1, b"\xff"),
        client_frame(0x8, b"\x03\xe8ok"),
        client_frame(0x3),
    ]
)


@SETTINGS
@given(st.lists(FRAMES, max_size=6), st.lists(st.integers(1, 40), max_size=30))
def test_any_split_gives_the_same_events(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(frames)
    pieces, pos = [], 0
    for cut in cuts:
        pieces.append(wire[pos : pos + cut])
        pos += cut
    pieces.append(wire[pos:])
    whole = run(Connection("server"), [wire])
    assert run(Connection("server"), pieces) == whole
