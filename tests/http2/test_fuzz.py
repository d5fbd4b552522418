"""Any bytes give events and, at worst, one ConnectionTerminated: never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thor.http2.protocol import ConnectionTerminated, H2Connection
from thor.http2.protocol.connection import PREFACE
from thor.http2.protocol.frames import settings_frame

from .peer import raw

frame = st.builds(
    raw,
    st.integers(0, 10),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 0x80000001]),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(frame, max_size=12), st.integers(1, 64))
def test_random_frames_never_raise(frames: list[bytes], chunk: int) -> None:
    server = H2Connection()
    server.initiate_connection()
    data = PREFACE + settings_frame({}) + b"".join(frames)
    events = []
    for start in range(0, len(data), chunk):
        events += server.receive_data(data[start : start + chunk])
    ends = [e for e in events if isinstance(e, ConnectionTerminated) and not e.remote]
    assert len(ends) <= 1
    assert not ends or events[-1] is ends[0]
    server.data_to_send()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    server = H2Connection()
    events = server.receive_data(PREFACE + settings_frame({}) + data)
    local_ends = [e for e in events if isinstance(e, ConnectionTerminated) and not e.remote]
    assert not local_ends or local_ends == [events[-1]]
