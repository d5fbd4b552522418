"""Static files, the pure rules: safe paths, preconditions (RFC 9110 §13.2.2), ranges, codings."""

from __future__ import annotations

import pytest

from thor_gateway.static.rules import (
    MAX_RANGES,
    Precondition,
    RangeResult,
    content_type,
    entity_tag,
    evaluate_preconditions,
    gzip_accepted,
    http_date,
    parse_http_date,
    parse_range,
    raw_path_refused,
    safe_relative,
)

ETAG = entity_tag(1_700_000_000_000_000_000, 1234)
MTIME = 1_700_000_000
DATE = http_date(MTIME)
EARLIER = http_date(MTIME - 60)
LATER = http_date(MTIME + 60)


@pytest.mark.parametrize(
    ("path_info", "expected"),
    [
        (b"/a.css", (b"a.css", False)),
        (b"/admin/css/base.css", (b"admin/css/base.css", False)),
        (b"/dir/", (b"dir", True)),
        (b"/", (b"", True)),
        (b"", (b"", False)),
        (b"/caf\xc3\xa9.txt", (b"caf\xc3\xa9.txt", False)),
        (b"/a..b", (b"a..b", False)),  # dots inside a name are fine
    ],
)
def test_safe_paths(path_info: bytes, expected: tuple[bytes, bool]) -> None:
    assert safe_relative(path_info) == expected


@pytest.mark.parametrize(
    "path_info",
    [
        b"/../etc/passwd",
        b"/a/../../etc/passwd",
        b"/a/..",
        b"/./a",
        b"/.env",
        b"/.git/config",
        b"/a/.hidden/b",
        b"/a//b",
        b"/a\\..\\b",
        b"/a\x00.css",
        b"relative",
    ],
)
def test_unsafe_paths_are_refused(path_info: bytes) -> None:
    assert safe_relative(path_info) is None


@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        (b"/static/a.css", False),
        (b"/static/%2e%2e/x", False),  # decodes to '..', which safe_relative refuses
        (b"/static/a%2Fb", True),
        (b"/static/a%2fb", True),
        (b"/static/a%5cb", True),
        (b"/static/a%00", True),
        (b"/static/caf%C3%A9", False),
    ],
)
def test_encoded_separators(raw: bytes, refused: bool) -> None:
    assert raw_path_refused(raw) is refused


def test_entity_tags_differ_per_representation() -> None:
    assert ETAG.startswith(b'"')
    assert ETAG.endswith(b'"')
    assert entity_tag(1, 2, b"gz") != entity_tag(1, 2)
    assert entity_tag(1, 2) != entity_tag(1, 3) != entity_tag(2, 3)


@pytest.mark.parametrize(
    "text",
    [
        b"Tue, 14 Nov 2023 22:13:20 GMT",
        b"Tuesday, 14-Nov-23 22:13:20 GMT",
        b"Tue Nov 14 22:13:20 2023",
    ],
)
def test_the_three_date_formats(text: bytes) -> None:
    assert parse_http_date(text) == MTIME  # RFC 9110 §5.6.7: recipients accept all three
    assert http_date(MTIME) == b"Tue, 14 Nov 2023 22:13:20 GMT"


@pytest.mark.parametrize("text", [b"yesterday", b"", b"Tue, 14 Nov 2023 22:13:20 +0100", b"\xff"])
def test_invalid_dates(text: bytes) -> None:
    assert parse_http_date(text) is None


def cond(*fields: tuple[bytes, bytes], method: bytes = b"GET") -> Precondition:
    return evaluate_preconditions(method, list(fields), ETAG, MTIME)


def test_no_conditionals() -> None:
    assert cond((b"Accept", b"*/*")) is Precondition.PROCEED


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # If-None-Match: weak comparison; a match is 304 for GET and HEAD.
        (((b"If-None-Match", ETAG),), Precondition.NOT_MODIFIED),
        (((b"If-None-Match", b"W/" + ETAG),), Precondition.NOT_MODIFIED),
        (((b"If-None-Match", b'"other", ' + ETAG),), Precondition.NOT_MODIFIED),
        (((b"If-None-Match", b'"other"'), (b"if-none-match", ETAG)), Precondition.NOT_MODIFIED),
        (((b"If-None-Match", b"*"),), Precondition.NOT_MODIFIED),
        (((b"If-None-Match", b'"other"'),), Precondition.PROCEED),
        # If-Modified-Since
        (((b"If-Modified-Since", DATE),), Precondition.NOT_MODIFIED),
        (((b"If-Modified-Since", LATER),), Precondition.NOT_MODIFIED),
        (((b"If-Modified-Since", EARLIER),), Precondition.PROCEED),
        (((b"If-Modified-Since", b"garbage"),), Precondition.PROCEED),  # §13.1.3: ignored
        # §13.2.2 step 3 before 4: If-None-Match present, If-Modified-Since is ignored.
        (((b"If-None-Match", b'"other"'), (b"If-Modified-Since", LATER)), Precondition.PROCEED),
        # If-Match: strong comparison; a failure is 412.
        (((b"If-Match", ETAG),), Precondition.PROCEED),
        (((b"If-Match", b"*"),), Precondition.PROCEED),
        (((b"If-Match", b"W/" + ETAG),), Precondition.FAILED),
        (((b"If-Match", b'"other"'),), Precondition.FAILED),
        # If-Unmodified-Since
        (((b"If-Unmodified-Since", EARLIER),), Precondition.FAILED),
        (((b"If-Unmodified-Since", DATE),), Precondition.PROCEED),
        (((b"If-Unmodified-Since", b"nonsense"),), Precondition.PROCEED),
        # Step 1 before step 2: with If-Match present, If-Unmodified-Since is ignored.
        (((b"If-Match", ETAG), (b"If-Unmodified-Since", EARLIER)), Precondition.PROCEED),
        # Step 1/2 before 3: 412 wins over 304.
        (((b"If-Match", b'"x"'), (b"If-None-Match", ETAG)), Precondition.FAILED),
        (((b"If-Unmodified-Since", EARLIER), (b"If-None-Match", ETAG)), Precondition.FAILED),
        (((b"If-Match", ETAG), (b"If-None-Match", ETAG)), Precondition.NOT_MODIFIED),
        # If-Range (step 5): a strong tag or the exact date holds; anything else drops Range.
        (((b"If-Range", ETAG),), Precondition.PROCEED),
        (((b"If-Range", b"W/" + ETAG),), Precondition.IGNORE_RANGE),
        (((b"If-Range", b'"other"'),), Precondition.IGNORE_RANGE),
        (((b"If-Range", DATE),), Precondition.PROCEED),
        (((b"If-Range", LATER),), Precondition.IGNORE_RANGE),
        (((b"If-Range", b"garbage"),), Precondition.IGNORE_RANGE),
    ],
)
def test_preconditions(fields: tuple[tuple[bytes, bytes], ...], expected: Precondition) -> None:
    assert cond(*fields) is expected


def test_if_range_only_concerns_get() -> None:
    assert cond((b"If-Range", b'"other"'), method=b"HEAD") is Precondition.PROCEED


@pytest.mark.parametrize(
    ("value", "length", "expected"),
    [
        (b"bytes=0-0", 10, [(0, 0)]),
        (b"bytes=0-99", 10, [(0, 9)]),  # clipped to the length
        (b"bytes=5-", 10, [(5, 9)]),
        (b"bytes=-3", 10, [(7, 9)]),
        (b"bytes=-30", 10, [(0, 9)]),
        (b"BYTES = 1-2 , 4-5", 10, [(1, 2), (4, 5)]),
        (b"bytes=0-1,,8-", 10, [(0, 1), (8, 9)]),
        (b"bytes=10-, 2-3", 10, [(2, 3)]),  # the unsatisfiable one is dropped
        (b"bytes=10-", 10, RangeResult.UNSATISFIABLE),
        (b"bytes=-0", 10, RangeResult.UNSATISFIABLE),
        (b"bytes=0-", 0, RangeResult.UNSATISFIABLE),
        (b"bytes=-5", 0, RangeResult.UNSATISFIABLE),
        (b"bytes=5-2", 10, RangeResult.IGNORE),  # invalid: the whole field is ignored
        (b"bytes=a-b", 10, RangeResult.IGNORE),
        (b"bytes=-", 10, RangeResult.IGNORE),
        (b"bytes=", 10, RangeResult.IGNORE),
        (b"items=0-1", 10, RangeResult.IGNORE),
        (b"0-1", 10, RangeResult.IGNORE),
        (b"bytes=" + b",".join([b"0-0"] * (MAX_RANGES + 1)), 10, RangeResult.IGNORE),
    ],
)
def test_ranges(value: bytes, length: int, expected: object) -> None:
    assert parse_range(value, length) == expected


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (None, False),
        (b"gzip", True),
        (b"gzip, deflate, br", True),
        (b"br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        (b"x-gzip", True),
        (b"GZIP", True),
        (b"gzip;q=0", False),
        (b"gzip;q=0.000", False),
        (b"*", True),
        (b"*;q=0", False),
        (b"*, gzip;q=0", False),
        (b"deflate, br", False),
        (b"identity", False),
        (b"gzip;q=0.8", True),  # an unlisted identity does not compete
        (b"gzip;q=0.5, identity", False),  # identity weighs more
        (b"gzip;q=0.5, identity;q=0.5", True),  # a tie: gzip
        (b"gzip;q=0.1, identity;q=0", True),
        (b"", False),
    ],
)
def test_accept_encoding(value: bytes | None, accepted: bool) -> None:
    headers = [] if value is None else [(b"Accept-Encoding", value)]
    assert gzip_accepted(headers) is accepted


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"base.css", b"text/css; charset=utf-8"),
        (b"a/b/index.html", b"text/html; charset=utf-8"),
        (b"app.js", None),  # text/javascript or application/javascript: both in UTF-8
        (b"logo.PNG", b"image/png"),
        (b"data.json", b"application/json; charset=utf-8"),
        (b"font.woff2", None),
        (b"noextension", b"application/octet-stream"),
        (b"dir.d/noextension", b"application/octet-stream"),
        (b"archive.tar.gz", b"application/gzip"),
    ],
)
def test_content_types(name: bytes, expected: bytes | None) -> None:
    found = content_type(name)
    if expected is None:
        assert b"/" in found
        if name.endswith(b".js"):
            assert found.endswith(b"javascript; charset=utf-8")
    else:
        assert found == expected
