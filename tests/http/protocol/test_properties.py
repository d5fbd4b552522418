"""Property tests: any bytes give events or one final Invalid; writers round-trip."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thor.http.headers import HOP_BY_HOP
from thor.http.protocol import (
    Body,
    End,
    Invalid,
    RequestHead,
    RequestParser,
    RequestWriter,
    ResponseHead,
    ResponseWriter,
)

from .helpers import normalize, response_factory, run

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHARS = string.ascii_letters + string.digits + "-!#$%&'*+.^_`|~"
TOKEN = st.text(alphabet=TCHARS, min_size=1, max_size=12).map(str.encode)
VALUE = st.binary(max_size=30).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128).strip(b" \t")
)
# Framing fields, and hop-by-hop fields (TE, Upgrade...), which the writer drops.
RESERVED = {b"content-length", b"host", b"expect"} | HOP_BY_HOP
FIELDS = st.lists(st.tuples(TOKEN, VALUE), max_size=6).map(
    lambda fs: [(n, v) for n, v in fs if n.lower() not in RESERVED]
)
TARGET = st.text(alphabet="abcXYZ019-._~%/?=&;:@!$'()*+,", max_size=20).map(
    lambda t: b"/" + t.encode()
)
SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
]


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def mutated() -> st.SearchStrategy[bytes]:
    """Seeds with random bytes flipped, inserted or deleted, plus plain random bytes."""

    def mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        data = bytearray(seed)
        for kind, where, byte in edits:
            i = where % (len(data) + 1)
            if kind == 0:
                data.insert(i, byte)
            elif kind == 1 and i < len(data):
                data[i] = byte
            elif i < len(data):
                del data[i]
        return bytes(data)

    edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 500), st.integers(0, 255)),
                     max_size=4)  # fmt: skip
    return st.one_of(st.binary(max_size=200), st.builds(mutate, st.sampled_from(SEEDS), edits))


@SETTINGS
@given(mutated(), st.lists(st.integers(0, 500), max_size=5), st.booleans())
def test_any_bytes_give_events_or_one_final_invalid(
    data: bytes, cuts: list[int], eof: bool
) -> None:
    for factory in (RequestParser, response_factory(b"GET", b"POST")):
        whole = run(factory, [data], eof)  # run() asserts Invalid is last
        split = run(factory, pieces(data, cuts), eof)
        assert normalize(split) == normalize(whole)
        assert all(isinstance(e, RequestHead | ResponseHead | Body | End | Invalid) for e in whole)


@SETTINGS
@given(
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"X-CUSTOM"]),
    TARGET,
    FIELDS,
    st.lists(st.binary(min_size=0, max_size=40), max_size=4),
    st.booleans(),
    st.lists(st.integers(0, 500), max_size=4),
)
def test_request_round_trip(
    method: bytes,
    target: bytes,
    fields: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    counted: bool,
    cuts: list[int],
) -> None:
    body = b"".join(chunks)
    headers = [(b"Host", b"example"), *fields]
    if counted:
        headers.append((b"Content-Length", b"%d" % len(body)))
    writer = RequestWriter()
    data = writer.start(method, target, headers, has_body=True)
    data += b"".join(writer.body(c) for c in chunks) + writer.end()
    events: list[Any] = normalize(run(RequestParser, pieces(data, cuts), False))
    head = events[0]
    assert (head.method, head.target, head.version) == (method, target, b"1.1")
    assert [(n, v) for n, v in head.headers if n.lower() != b"transfer-encoding"] == headers
    assert events[1:] == ([Body(body)] if body else []) + [End([])]


@SETTINGS
@given(
    st.sampled_from([200, 201, 404, 500, 204, 304]),
    FIELDS,
    st.lists(st.binary(min_size=0, max_size=40), max_size=4),
    st.booleans(),
    st.sampled_from([b"GET", b"HEAD"]),
    st.lists(st.integers(0, 500), max_size=4),
)
def test_response_round_trip(
    status: int,
    fields: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    counted: bool,
    method: bytes,
    cuts: list[int],
) -> None:
    bodiless = method == b"HEAD" or status in (204, 304)
    body = b"" if bodiless else b"".join(chunks)
    headers = list(fields)
    if counted:
        headers.append((b"Content-Length", b"%d" % len(b"".join(chunks))))
    writer = ResponseWriter(method, b"1.1", True)
    data = writer.start(status, b"Phrase here", headers)
    data += b"".join(writer.body(c) for c in chunks) + writer.end()
    events: list[Any] = normalize(run(response_factory(method), pieces(data, cuts), False))
    head = events[0]
    assert (head.status, head.phrase, head.keep_alive) == (status, b"Phrase here", True)
    assert head.headers[: len(fields)] == fields
    assert events[1:] == ([Body(body)] if body else []) + [End([])]
