"""Cache keys, Vary, 304 updates, invalidation and the client's conditionals (no sockets)."""

from __future__ import annotations

from thor_gateway.cache.keys import (
    byte_range,
    cache_status,
    freshen,
    invalidated,
    language_chosen,
    not_modified,
    primary_key,
    secondary_key,
    validators_match,
    vary_names,
)

KEY = b"http://example.com/a/b?x=1"


def test_primary_key_is_the_target_uri() -> None:
    assert primary_key("http", [(b"Host", b"Example.COM")], b"/a/b?x=1") == KEY
    assert primary_key("http", [], b"HTTP://Example.com/a/b?x=1") == KEY
    assert primary_key("https", [(b"Host", b"example.com")], b"/") != primary_key(
        "http", [(b"Host", b"example.com")], b"/"
    )


def test_vary_names_and_normalised_secondary_keys() -> None:
    names = vary_names([(b"Vary", b"Accept-Encoding, accept"), (b"Vary", b"Accept-Language")])
    assert names == (b"accept", b"accept-encoding", b"accept-language")
    one = secondary_key(names, [(b"Accept-Encoding", b"gzip,deflate"), (b"Accept", b"a/b")])
    two = secondary_key(
        names,
        [(b"accept", b"a/b"), (b"Accept-Encoding", b"gzip, "), (b"Accept-Encoding", b" deflate")],
    )
    assert one == two
    # a field that is absent differs from one that is present and empty
    assert secondary_key((b"accept",), []) != secondary_key((b"accept",), [(b"Accept", b"")])
    assert secondary_key((b"accept",), [(b"Accept", b"a/b")]) != secondary_key(
        (b"accept",), [(b"Accept", b"a/c")]
    )


def test_freshen_replaces_named_fields_and_keeps_the_rest() -> None:
    stored = [
        (b"Cache-Control", b"max-age=1"),
        (b"ETag", b'"a"'),
        (b"Content-Length", b"5"),
        (b"X-Kept", b"1"),
        (b"Content-Encoding", b"gzip"),
    ]
    fresh = [
        (b"Cache-Control", b"max-age=60"),
        (b"ETag", b'"b"'),
        (b"Content-Length", b"0"),
        (b"Content-Encoding", b"br"),
        (b"Connection", b"X-Hop"),
        (b"X-Hop", b"1"),
        (b"X-New", b"2"),
    ]
    out = dict(freshen(stored, fresh))
    assert out[b"Cache-Control"] == b"max-age=60"
    # what describes the stored content stays (§3.2: Content-Length; and its coding, tag)
    assert out[b"Content-Length"] == b"5"
    assert out[b"ETag"] == b'"a"'
    assert out[b"Content-Encoding"] == b"gzip"
    assert out[b"X-Kept"] == b"1"
    assert out[b"X-New"] == b"2"
    assert b"X-Hop" not in out
    assert b"Connection" not in out


def _freshened_by_hand(
    stored: list[tuple[bytes, bytes]], fresh: list[tuple[bytes, bytes]]
) -> tuple[tuple[bytes, bytes], ...]:
    """RFC 9111 §3.2 spelled out for lists without a Connection field: the new fields (but
    those that describe the stored content, and hop-by-hop ones) replace the stored fields
    of their names, which keep their order, and come after them."""
    not_updated = {
        b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding",
        b"upgrade", b"proxy-authenticate", b"proxy-authorization", b"trailer",
        b"content-length", b"content-encoding", b"content-md5", b"content-range", b"etag",
    }  # fmt: skip
    taken = [(n, v) for n, v in fresh if n.lower() not in not_updated]
    replaced = {n.lower() for n, _ in taken}
    return tuple([(n, v) for n, v in stored if n.lower() not in replaced] + taken)


def test_freshen_by_name_lists_gives_the_values_of_each_call() -> None:
    """freshen works out which fields stay once per pair of name lists: the same lists of
    names with other values give those values, in the same places, every time."""
    names_stored = [b"Date", b"Cache-Control", b"ETag", b"Content-Length", b"x-a", b"X-A"]
    names_fresh = [b"date", b"Cache-Control", b"ETag", b"X-A", b"Expires"]
    for round_ in range(3):  # (the first call works the plan out; the others reuse it)
        stored = [(n, b"s%d-%d" % (round_, i)) for i, n in enumerate(names_stored)]
        fresh = [(n, b"f%d-%d" % (round_, i)) for i, n in enumerate(names_fresh)]
        assert freshen(stored, fresh) == _freshened_by_hand(stored, fresh)
    # one field either side, or none: still tuples of pairs
    assert freshen([(b"A", b"1")], [(b"B", b"2")]) == ((b"A", b"1"), (b"B", b"2"))
    assert freshen([(b"A", b"1")], [(b"a", b"2")]) == ((b"a", b"2"),)
    assert freshen([], []) == ()
    assert freshen([(b"A", b"1")], [(b"Content-Length", b"0")]) == ((b"A", b"1"),)


def test_freshen_with_a_connection_field_is_worked_out_each_time() -> None:
    """The fields a 304's Connection names are not taken (§3.1), whatever their names: a
    list with Connection is not planned by its names."""
    stored = [(b"X-One", b"1"), (b"X-Two", b"2")]
    first = freshen(stored, [(b"Connection", b"X-One"), (b"X-One", b"new"), (b"X-Two", b"new")])
    assert first == ((b"X-One", b"1"), (b"X-Two", b"new"))
    second = freshen(stored, [(b"Connection", b"X-Two"), (b"X-One", b"new"), (b"X-Two", b"new")])
    assert second == ((b"X-Two", b"2"), (b"X-One", b"new"))


def test_validators_match() -> None:
    assert validators_match([(b"ETag", b'"a"')], [(b"ETag", b'W/"a"')])
    assert not validators_match([(b"ETag", b'"a"')], [(b"ETag", b'"b"')])
    assert not validators_match([], [(b"ETag", b'"b"')])
    lm = (b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT")
    assert validators_match([lm], [lm])
    assert validators_match([], [])


def test_unsafe_methods_invalidate_the_target_and_same_origin_locations() -> None:
    headers = [
        (b"Location", b"/other"),
        (b"Content-Location", b"http://elsewhere.example/x"),
    ]
    assert invalidated(b"POST", 201, KEY, headers) == [KEY, b"http://example.com/other"]
    assert invalidated(b"PUT", 204, KEY, [(b"Content-Location", b"c")]) == [
        KEY,
        b"http://example.com/a/c",
    ]
    assert invalidated(b"DELETE", 404, KEY, headers) == []  # an error invalidates nothing
    assert invalidated(b"GET", 200, KEY, headers) == []
    assert invalidated(b"POST", 303, KEY, [(b"Location", b"//elsewhere/x")]) == [KEY]


def test_the_clients_conditionals_against_a_stored_response() -> None:
    stored = [(b"ETag", b'"v1"'), (b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT")]
    assert not_modified([(b"If-None-Match", b'"v0", W/"v1"')], stored)
    assert not not_modified([(b"If-None-Match", b'"v2"')], stored)
    assert not_modified([(b"If-None-Match", b"*")], stored)
    assert not_modified([(b"If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 GMT")], stored)
    assert not not_modified([(b"If-Modified-Since", b"Sat, 05 Nov 1994 08:49:37 GMT")], stored)
    # If-None-Match decides when both are sent (RFC 9110 §13.2.2)
    both = [(b"If-None-Match", b'"v2"'), (b"If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 GMT")]
    assert not not_modified(both, stored)
    assert not not_modified([], stored)


def test_cache_status_names_this_cache() -> None:
    assert cache_status(b"hit") == (b"Cache-Status", b"thor; hit")
    assert cache_status(b"fwd=miss", b"stored")[1] == b"thor; fwd=miss; stored"


def test_byte_ranges() -> None:
    assert byte_range([b"bytes=0-4"], 10) == (0, 4)
    assert byte_range([b"bytes=5-"], 10) == (5, 9)
    assert byte_range([b"bytes=-3"], 10) == (7, 9)
    assert byte_range([b"bytes=-30"], 10) == (0, 9)
    assert byte_range([b"bytes=8-100"], 10) == (8, 9)
    assert byte_range([b"bytes=10-"], 10) is False  # unsatisfiable: 416
    assert byte_range([b"bytes=-0"], 10) is False
    # ignored: the whole response is sent
    for ignored in (b"bytes=0-1,4-5", b"items=0-1", b"bytes=5-2", b"bytes=x-", b"bytes"):
        assert byte_range([ignored], 10) is None, ignored
    assert byte_range([b"bytes=0-1", b"bytes=2-3"], 10) is None


def test_accept_fields_are_compared_without_case_or_order() -> None:
    names = (b"accept-language", b"x-custom")
    assert secondary_key(names, [(b"Accept-Language", b"eN, De;Q = 0.5")]) == secondary_key(
        names, [(b"Accept-Language", b"de;q=0.5,en")]
    )
    assert secondary_key(names, [(b"Accept-Language", b"en;q=0.5, de")]) != secondary_key(
        names, [(b"Accept-Language", b"en, de;q=0.5")]
    )
    assert secondary_key(names, [(b"X-Custom", b"A")]) != secondary_key(
        names, [(b"X-Custom", b"a")]
    )


def test_a_language_the_request_would_choose() -> None:
    de = [(b"Content-Language", b"de"), (b"Vary", b"Accept-Language")]

    def chosen(stored: list[tuple[bytes, bytes]], value: bytes) -> bool:
        return language_chosen(stored, [(b"Accept-Language", value)])

    assert chosen(de, b"fr;q=0.5, de;q=1.0")
    assert chosen(de, b"DE, fr;q=0.999")
    assert chosen(de, b"*;q=0.1, de")
    assert not chosen(de, b"fr, de")  # equal weights: the origin may choose fr
    assert not chosen(de, b"fr;q=0.5, de;q=0.5")
    assert not chosen(de, b"fr;q=0.5, *;q=0.9, de;q=0.8")  # any other language beats it
    assert not chosen(de, b"de;q=0, fr;q=0")  # not acceptable at all
    assert not chosen(de, b"en")
    assert not chosen(de, b"de;q=2, fr;q=0.5")  # a weight the field does not allow
    assert not chosen(de, b"de-AT")  # another tag, even if it would match by prefix
    assert not chosen([(b"Content-Language", b"de, en")], b"de")  # two languages
    assert not chosen([], b"de")
    assert not language_chosen(de, [])
