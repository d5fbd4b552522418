"""The memory store: variants per key, a byte budget, least recently used evicted first."""

from __future__ import annotations

import gc

from thor_gateway.cache.heads import analyse
from thor_gateway.cache.store import Entry, MemoryStore


def entry(key: bytes, body: bytes = b"x" * 100, secondary: tuple = ()) -> Entry:  # type: ignore[type-arg]
    return Entry(key, (), secondary, 200, b"OK", [], body, 0.0, 0.0)


def test_put_replace_and_remove() -> None:
    store = MemoryStore(10_000)
    store.put(entry(b"a"))
    store.put(entry(b"a", secondary=((b"accept", b"x"),)))
    assert len(store.variants(b"a")) == 2
    store.put(entry(b"a", b"y" * 10))  # replaces the variant with the same secondary key
    assert sorted(len(e.body) for e in store.variants(b"a")) == [10, 100]
    assert store.bytes == sum(e.size for e in store)
    assert store.remove(b"a") == 2
    assert store.bytes == 0
    assert list(store.variants(b"a")) == []


def test_least_recently_used_goes_first() -> None:
    one = entry(b"one").size
    store = MemoryStore(3 * one)
    for key in (b"a", b"b", b"c"):
        assert store.put(entry(key))
    store.variants(b"a")  # a used: b is now the oldest
    store.put(entry(b"d"))
    assert [e.key for e in store] == [b"c", b"a", b"d"]
    assert store.evictions == 1
    assert store.bytes <= store.max_bytes


def test_eviction_goes_by_url_and_keeps_what_was_just_stored() -> None:
    one = entry(b"one").size
    store = MemoryStore(3 * one)
    store.put(entry(b"a"))
    store.put(entry(b"b", secondary=((b"accept", b"1"),)))
    store.put(entry(b"b", secondary=((b"accept", b"2"),)))
    store.put(entry(b"c"))  # a is the least recently used URL
    assert [e.key for e in store] == [b"b", b"b", b"c"]
    store.variants(b"b")
    store.put(entry(b"d"))  # c is now: b's two variants stay
    assert sorted(e.key for e in store) == [b"b", b"b", b"d"]
    # One URL with more variants than fit: the one just stored stays, alone.
    for n in range(4):
        store.put(entry(b"e", secondary=((b"accept", b"%d" % n),)))
    assert [e.secondary for e in store] == [((b"accept", b"3"),)]
    assert store.bytes == one
    assert store.evictions == 8


def test_too_big_is_refused_and_purge_by_prefix() -> None:
    store = MemoryStore(1000)
    assert not store.put(entry(b"big", b"z" * 2000))
    assert len(store) == 0
    store.max_bytes = 100_000
    for key in (b"http://h/a/1", b"http://h/a/2", b"http://h/b"):
        store.put(entry(key))
    assert store.purge(b"http://h/a/") == 2
    assert [e.key for e in store] == [b"http://h/b"]


def test_fresh_until_agrees_with_reuse() -> None:
    from thor_gateway.cache.rules import Reuse, reuse

    for cc in (
        b"max-age=60",
        b"max-age=0",
        b"no-cache, max-age=60",
        b"s-maxage=5",
        b"max-age=60, stale-while-revalidate=30",
        b"max-age=0, stale-while-revalidate=30",
        b"s-maxage=5, stale-while-revalidate=30",
        b"max-age=60, must-revalidate, stale-while-revalidate=30",
    ):
        for age_field in ([], [(b"Age", b"30")], [(b"Age", b"90")]):
            headers = [(b"Cache-Control", cc), *age_field]
            e = Entry(b"k", (), (), 200, b"OK", headers, b"", 1000.0, 1000.0)
            assert e.length == ((b"Content-Length", b"0"),)
            for now in (990.0, 1000.0, 1010.0, 1029.9, 1030.0, 1059.9, 1060.0, 1090.0, 2000.0):
                decision = reuse({}, e.res_cc, e.lifetime, e.age(now))
                assert (now < e.fresh_until) == (decision is Reuse.FRESH), (cc, age_field, now)
                # serve_until: after it, a request without directives validates (the
                # handler's shortcut past reuse()).
                if now > e.serve_until:
                    assert decision is Reuse.VALIDATE, (cc, age_field, now)
    assert Entry(b"k", (), (), 204, b"No Content", [], b"", 0.0, 0.0).length == ()


def test_a_stored_response_is_one_object_for_the_collector() -> None:
    """What the store keeps of a response is, for CPython's cyclic collector, the entry
    alone: its fields' values, served fields, length, validators and body pieces are
    tuples of bytes (untracked at the collector's first look), its field names are its
    head shape's, and a URL with one entry maps to it with no list around it. A full store
    is then one object a response to scan, not six (and the few head shapes the entries
    share)."""
    fields = [
        (b"Date", b"Mon, 07 Dec 2026 23:00:00 GMT"),
        (b"Content-Length", b"6"),
        (b"ETag", b'"v1"'),
        (b"Last-Modified", b"Mon, 07 Dec 2026 22:00:00 GMT"),
        (b"Cache-Control", b"max-age=60"),
    ]
    head = analyse(200, fields)
    values = tuple(value for _, value in fields)
    fetched = Entry.fetched(
        b"http://h/f", head.vary, (), 200, b"OK", values, [b"abc", b"def"], 0.0, 0.0, head
    )
    made = Entry(b"http://h/m", (), (), 200, b"OK", list(fields), b"abcdef", 0.0, 0.0)
    store = MemoryStore()
    for stored in (fetched, made):
        assert store.put(stored)
        stored.serving()  # served once: its served fields and length are made
        assert stored.conditions() == (
            (b"If-None-Match", b'"v1"'),
            (b"If-Modified-Since", fields[3][1]),
        )
    gc.collect()
    gc.collect()  # (a tuple is untracked once the tuples in it are)
    for stored in (fetched, made):
        held = [stored.values, stored.served, stored.length, stored.validators, stored.pieces]
        assert [part for part in held if gc.is_tracked(part)] == []
        tracked = {id(ref) for ref in gc.get_referents(stored) if gc.is_tracked(ref)}
        # Its class, and the shape of its head: one object for every response with those
        # field names, not one for each.
        assert tracked == {id(Entry), id(head.shape)}
        assert stored.fields() == tuple(fields)
        assert store.variants(stored.key) == (stored,)
    assert fetched.whole() == b"abcdef"
    assert [ref for ref in gc.get_referents(store._urls) if gc.is_tracked(ref)] == [fetched, made]
