"""The client's request preparation: header fields in one pass, URL parsing with a cache."""

from __future__ import annotations

import pytest

from thor.http import error
from thor.http.client import url as client_url
from thor.http.client.url import outgoing_headers, parse_url, prepare_headers


def test_prepare_headers_encodes_str_and_keeps_what_was_given() -> None:
    given = [("Accept", "a/b"), (b"X-Y", "é"), ("Host", b"other")]
    as_given, out, expect = prepare_headers(given, b"h:1", False, True)
    assert as_given == [(b"Accept", b"a/b"), (b"X-Y", "é".encode("latin-1")), (b"Host", b"other")]
    assert out == [(b"Host", b"h:1"), (b"Accept", b"a/b"), (b"X-Y", b"\xe9")]
    assert not expect


def test_prepare_headers_drops_hop_by_hop_and_what_connection_names() -> None:
    given = [
        (b"Connection", b"X-Secret, keep-alive"),
        (b"X-Secret", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"x-secret", b"2"),
        (b"X-Kept", b"3"),
    ]
    _, out, _ = prepare_headers(given, b"h", False, True)
    assert out == [(b"Host", b"h"), (b"X-Kept", b"3")]


def test_connection_cannot_drop_host_or_te_but_can_drop_expect() -> None:
    given = [
        (b"Connection", b"host, te, expect"),
        (b"Host", b"mine"),
        (b"TE", b"trailers"),
        (b"Expect", b"100-continue"),
    ]
    _, out, expect = prepare_headers(given, b"h", True, True)
    assert out == [(b"Host", b"mine"), (b"TE", b"trailers"), (b"Connection", b"TE")]
    assert not expect


def test_te_trailers_and_close_share_one_connection_field() -> None:
    _, out, _ = prepare_headers([(b"TE", b"gzip, Trailers")], b"h", False, False)
    assert out == [(b"Host", b"h"), (b"TE", b"trailers"), (b"Connection", b"TE, close")]
    _, out, _ = prepare_headers([(b"TE", b"gzip")], b"h", False, False)
    assert out == [(b"Host", b"h"), (b"Connection", b"close")]


def test_preserve_host_takes_the_first_host_field() -> None:
    given = [(b"Host", b"one"), (b"Host", b"two")]
    assert prepare_headers(given, b"h", True, True)[1] == [(b"Host", b"one")]
    assert outgoing_headers([], b"h", True, True) == ([(b"Host", b"h")], False)


def test_prepare_headers_rejects_what_is_not_text() -> None:
    with pytest.raises(error.OutputSyntaxError):
        prepare_headers([(b"X", 3)], b"h", False, True)  # type: ignore[list-item]


def test_parse_url_cache_gives_the_same_answers_and_stays_bounded() -> None:
    first = parse_url(b"http://Example.com:8080/a?b#c")
    assert parse_url(b"http://Example.com:8080/a?b#c") == first
    assert (first.host, first.port, first.authority, first.target) == (
        "example.com",
        8080,
        b"Example.com:8080",
        b"/a?b",
    )
    for i in range(client_url._URL_CACHE_SIZE + 10):
        assert parse_url(b"http://h/%d" % i).target == b"/%d" % i
    assert len(client_url._urls) <= client_url._URL_CACHE_SIZE
    with pytest.raises(error.UrlError):  # errors are never cached as answers
        parse_url(b"http://h/a b")
    with pytest.raises(error.UrlError):
        parse_url(b"http://h/a b")


def test_prepared_fields_are_remembered_as_copies() -> None:
    given = [("X-A", "1"), (b"Connection", b"x-b"), (b"X-B", b"2"), (b"Expect", b"100-continue")]
    first = prepare_headers(list(given), b"h", False, True)
    assert first == (
        [(b"X-A", b"1"), *given[1:]],
        [(b"Host", b"h"), (b"X-A", b"1"), *given[3:]],
        True,
    )
    first[0].clear()
    first[1].append((b"Mutated", b"yes"))  # the caller's lists: the memo does not share them
    again = prepare_headers(list(given), b"h", False, True)
    assert again == (
        [(b"X-A", b"1"), *given[1:]],
        [(b"Host", b"h"), (b"X-A", b"1"), *given[3:]],
        True,
    )
    assert again[0] is not first[0]
    assert again[1] is not first[1]
    # The same fields for another authority, or without keep-alive, are another answer.
    assert prepare_headers(list(given), b"other", False, True)[1][0] == (b"Host", b"other")
    assert prepare_headers(list(given), b"h", False, False)[1][-1] == (b"Connection", b"close")
    # An iterator is read once, as it always was.
    assert prepare_headers(iter(given), b"h", False, True) == again


def test_prepared_fields_memo_is_bounded() -> None:
    for i in range(client_url._prepared.size + 10):
        prepare_headers([(b"X", b"%d" % i)], b"h", False, True)
        assert len(client_url._prepared) <= client_url._prepared.size
    big = [(b"X", b"v" * client_url._PREPARED_MAX_BYTES)]
    prepare_headers(big, b"h", False, True)
    assert (b"h", False, True, *big) not in client_url._prepared
    unhashable = [[b"X", b"1"]]  # worked out every time
    for _ in range(2):
        assert prepare_headers(unhashable, b"h", False, True)[1] == [(b"Host", b"h"), (b"X", b"1")]  # type: ignore[arg-type]
