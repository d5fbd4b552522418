"""The memo of response head analyses (heads.py) against the rules it stands for."""

from __future__ import annotations

import pytest

from thor_gateway.cache.heads import analyse, freshened, pass_mark
from thor_gateway.cache.keys import freshen, vary_names
from thor_gateway.cache.rules import (
    Fields,
    freshness_lifetime,
    response_directives,
    storable,
)
from thor_gateway.cache.store import Entry

H = list[tuple[bytes, bytes]]
DATE = (b"Date", b"Mon, 07 Dec 2026 06:20:00 GMT")

HEADS: list[tuple[int, H]] = [
    (200, [DATE, (b"Cache-Control", b"max-age=0"), (b"Content-Length", b"3")]),
    (200, [DATE, (b"Cache-Control", b"max-age=60"), (b"ETag", b'"a"'), (b"Vary", b"Accept")]),
    (200, [DATE, (b"Cache-Control", b"no-store")]),
    (200, [DATE, (b"Cache-Control", b"private, max-age=60")]),
    (200, [DATE, (b"cache-control", b"max-age=60"), (b"CACHE-CONTROL", b"no-cache")]),
    (200, [DATE, (b"Surrogate-Control", b"max-age=30"), (b"Cache-Control", b"no-store")]),
    (200, [DATE, (b"Expires", b"Mon, 07 Dec 2026 07:20:00 GMT")]),
    (200, [DATE, (b"Last-Modified", b"Mon, 07 Dec 2025 06:20:00 GMT")]),
    (
        200,
        [
            (b"ETag", b'"b"'),
            DATE,
            (b"Cache-Control", b"max-age=5"),
            (b"Last-Modified", b"Mon, 07 Dec 2025 06:20:00 GMT"),
        ],
    ),
    (200, [DATE, (b"Vary", b"*"), (b"Cache-Control", b"max-age=60")]),
    (200, [(b"Cache-Control", b"s-maxage=5, stale-while-revalidate=30"), (b"Age", b"3")]),
    (200, [(b"Cache-Control", b"max-age=5, stale-while-revalidate=30")]),
    (302, [DATE]),
    (302, [DATE, (b"Cache-Control", b"max-age=60")]),
    (404, [DATE]),
    (500, [DATE, (b"Cache-Control", b"must-understand, no-store, max-age=60")]),
    (200, []),
]


@pytest.mark.parametrize(("code", "fields"), HEADS)
def test_a_head_decides_as_the_rules(code: int, fields: H) -> None:
    head = analyse(code, fields)
    indexed = Fields(fields)
    res_cc = response_directives(indexed)
    assert head.res_cc == res_cc
    assert head.keep == (code != 206 and storable(b"GET", code, [], indexed, {}, res_cc))
    assert head.vary == (vary_names(fields) if b"vary" in indexed.by_name else ())
    assert head.mark == pass_mark(indexed, res_cc)
    if head.lifetime is not None:
        assert head.lifetime == freshness_lifetime(code, indexed, 0.0, res_cc)
    # Entry.fetched (from the analysis, the body in the chunks it came in) works out what
    # Entry itself does.
    start, end = (b"k", head.vary, (), code, b"X"), (1000.0, 1001.0)
    values = tuple(value for _, value in fields)
    fetched = Entry.fetched(*start, values, [b"ab", b"c"], *end, head=head)
    plain = Entry(*start, fields, b"abc", *end)
    for name in (
        "res_cc",
        "lifetime",
        "initial_age",
        "size",
        "body_size",
        "fresh_until",
        "serve_until",
        "file",
        "served",
    ):
        assert getattr(fetched, name) == getattr(plain, name), name
    # the conditions that validate it, the served fields and the length, worked out at
    # their first use (the fetched entry's by its head's shape)
    assert fetched.validators is None
    assert fetched.conditions() == plain.conditions()
    assert fetched.serving() == plain.serving()
    assert fetched.length == plain.length
    # the fields, kept as values and named by the head's shape
    assert fetched.fields() == plain.fields() == tuple(fields)
    assert fetched.values == plain.values == values
    # the chunks are joined at the first use of the body, once
    assert fetched.whole() == b"abc"
    assert fetched.pieces is None
    assert fetched.whole() is fetched.body
    one = Entry.fetched(*start, values, [b"abc"], *end, head=head)
    assert (one.body, one.pieces, one.whole()) == (b"abc", None, b"abc")


def test_one_analysis_per_head_shape() -> None:
    def fields(date: bytes, control: bytes) -> H:
        return [(b"Date", date), (b"Cache-Control", control), (b"Content-Length", b"5")]

    first = analyse(200, fields(b"Mon, 07 Dec 2026 06:20:00 GMT", b"max-age=7"))
    # Another Date or length: the same shape and policy, the same analysis.
    assert analyse(200, fields(b"Mon, 07 Dec 2026 06:20:01 GMT", b"max-age=7")) is first
    # Another Cache-Control, another status or another order of names: analysed again.
    assert analyse(200, fields(b"Mon, 07 Dec 2026 06:20:00 GMT", b"max-age=8")).lifetime == 8.0
    assert analyse(203, fields(b"Mon, 07 Dec 2026 06:20:00 GMT", b"max-age=7")) is not first
    swapped = [(b"Cache-Control", b"no-store"), (b"Date", b"x")]
    assert analyse(200, swapped).keep is False
    assert analyse(200, swapped).shape.date == 1


def test_unhashable_pairs_are_analysed_not_remembered() -> None:
    fields = [[b"Cache-Control", b"max-age=60"]]
    head = analyse(200, fields)  # type: ignore[arg-type]
    assert head.keep
    assert head.lifetime == 60.0


def test_the_last_head_is_tried_first_and_answers_for_no_other() -> None:
    # analyse() compares a head with the last one before it asks the memos: a repeat gets
    # the same analysis, and any change of name, order, status or policy value gets its own.
    def head(code: int, *fields: tuple[bytes, bytes]) -> H:
        return [(bytes(n), bytes(v)) for n, v in fields]  # (fresh objects, as parsed)

    cc60, cc0 = (b"Cache-Control", b"max-age=60"), (b"Cache-Control", b"max-age=0")
    length = (b"Content-Length", b"1")
    a = analyse(200, head(200, cc60, length))
    assert analyse(200, head(200, cc60, length)) is a  # the last one
    b = analyse(200, head(200, cc0, length))  # the same names, another policy value
    assert (a.lifetime, b.lifetime) == (60.0, 0.0)
    assert analyse(200, head(200, cc60, length)) is a  # from the memo again
    assert analyse(404, head(404, cc60, length)) is not a  # another status
    swapped = analyse(200, head(200, length, cc60))  # another order of the same names
    assert (swapped.shape.content_length, a.shape.content_length) == (0, 1)
    lower = analyse(200, head(200, (b"cache-control", b"max-age=60"), length))
    assert lower.shape is not a.shape
    assert lower.lifetime == 60.0
    assert analyse(200, []).keep
    assert analyse(200, []) is analyse(200, [])


@pytest.mark.parametrize(
    "fresh",
    [
        [(b"Date", b"Tue, 08 Dec 2026 06:20:00 GMT"), (b"ETag", b'"b"'), (b"X-New", b"1")],
        [(b"cache-control", b"max-age=9"), (b"Content-Length", b"0")],
        [],
        # a Connection field: planned by its values, not its names (keys.freshen)
        [(b"Connection", b"X-Old"), (b"X-Old", b"gone"), (b"ETag", b'"c"')],
    ],
)
def test_a_304_freshens_the_stored_values_as_freshen_does_the_fields(fresh: H) -> None:
    """freshened (the 304 path: a stored entry's values, named by its shape) gives the names
    and values of what keys.freshen gives for its fields."""
    stored = [DATE, (b"Cache-Control", b"max-age=60"), (b"ETag", b'"a"'), (b"X-Old", b"1")]
    head = analyse(200, stored)
    values = tuple(value for _, value in stored)
    for _ in range(2):  # (the first call plans, the second reuses the plan)
        names, merged = freshened(head.shape, values, fresh)
        assert tuple(zip(names, merged, strict=True)) == freshen(stored, fresh)


def test_a_stored_entry_keeps_its_values_and_not_its_names() -> None:
    """An entry keeps its fields' values alone; the names it is served with are its head
    shape's, one tuple for every response with those names (the memory a stored response
    takes is its values, not its names and pairs again)."""
    fields = [DATE, (b"Cache-Control", b"max-age=60"), (b"Content-Length", b"3")]
    head = analyse(200, fields)
    entries = [
        Entry.fetched(b"k%d" % i, (), (), 200, b"OK", (b"d%d" % i, b"max-age=60", b"3"),
                      [b"abc"], 0.0, 0.0, head)
        for i in range(2)
    ]  # fmt: skip
    for i, entry in enumerate(entries):
        assert entry.values == (b"d%d" % i, b"max-age=60", b"3")
        names = [name for name, _ in entry.fields()]
        assert names == [b"Date", b"Cache-Control", b"Content-Length"]
        assert all(a is b for a, b in zip(names, head.shape.names, strict=True))
        assert entry.serving() == ((b"Date", b"d%d" % i), (b"Cache-Control", b"max-age=60"))
