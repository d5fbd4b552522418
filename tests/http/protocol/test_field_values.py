"""The shared readers of two field values (thor.http.protocol.abnf): HTTP-dates (RFC 9110
§5.6.7) and byte-range sets (§14.1.2), which static files and the cache both use."""

from __future__ import annotations

import calendar
import email.utils
import random

import pytest

from thor.http.protocol.abnf import http_date, parse_byte_ranges, parse_http_date

SUNDAY = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110 §5.6.7's example


# --- HTTP-date ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 format
        b"Sun Nov  6 08:49:37 1994",  # ANSI C's asctime() format
        b"sun, 06 nov 1994 08:49:37 gmt",  # read without case
        b"  Sun, 06 Nov 1994 08:49:37 GMT\t",  # OWS around a field value
        b"Sun Nov 06 08:49:37 1994",  # asctime with a two-digit day
    ],
)
def test_a_recipient_accepts_the_three_formats(text: bytes) -> None:
    assert parse_http_date(text) == SUNDAY


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"0",
        b"yesterday",
        b"\xff",
        b"Sun, 32 Nov 1994 08:49:37 GMT",  # no such day
        b"Thu, 31 Apr 2024 00:00:00 GMT",  # April has 30
        b"Thu, 29 Feb 2024 24:00:00 GMT",  # hour 24
        b"Thu, 29 Feb 2024 23:60:00 GMT",
        b"Thu, 29 Feb 2024 23:59:61 GMT",
        b"Mon, 29 Feb 2100 00:00:00 GMT",  # 2100 is not a leap year
        b"Sun, 06 Nov 1994 08:49:37 +0000",  # an HTTP-date is always GMT
        b"Sun, 06 Nov 1994 08:49:37 UTC",
        b"Sun, 6 Nov 1994 08:49:37 GMT",  # IMF-fixdate's day has two digits
        b"Sun, 06 Nov 94 08:49:37 GMT",
        b"Sun, 06 Foo 1994 08:49:37 GMT",
        b"Xyz, 06 Nov 1994 08:49:37 GMT",
        b"Sun, 06-Nov-94 08:49:37 GMT",  # rfc850 spells the day out
        b"Sun Nov  6 08:49:37 94",
        b"Sun, 06 Nov 1994 08:49:37 GMT x",
    ],
)
def test_what_is_not_a_date(text: bytes) -> None:
    assert parse_http_date(text) is None


def test_leap_years_and_seconds() -> None:
    assert parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT") == calendar.timegm(
        (2000, 2, 29, 0, 0, 0)
    )
    assert parse_http_date(b"Thu, 29 Feb 2024 12:00:00 GMT") == calendar.timegm(
        (2024, 2, 29, 12, 0, 0)
    )
    # §5.6.7: second = 2DIGIT, 60 being a leap second; it counts into the next minute.
    assert parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT") == calendar.timegm(
        (2017, 1, 1, 0, 0, 0)
    )


def test_an_rfc850_year_more_than_50_years_ahead_is_in_the_past() -> None:
    in_2026 = float(calendar.timegm((2026, 6, 1, 0, 0, 0)))
    expected = {76: 2076, 77: 1977, 0: 2000, 99: 1999, 26: 2026}
    for yy, year in expected.items():
        text = b"Friday, 01-Jan-%02d 00:00:00 GMT" % yy
        assert parse_http_date(text, now=in_2026) == calendar.timegm((year, 1, 1, 0, 0, 0))
    # The year of ``now`` is its calendar year, to the second.
    new_year = calendar.timegm((2026, 1, 1, 0, 0, 0))
    text = b"Friday, 01-Jan-76 00:00:00 GMT"
    assert parse_http_date(text, now=new_year) == calendar.timegm((2076, 1, 1, 0, 0, 0))
    assert parse_http_date(text, now=new_year - 1) == calendar.timegm((1976, 1, 1, 0, 0, 0))
    # Without a clock reading, the century is chosen as in 2000: 1951 to 2050.
    assert parse_http_date(b"Friday, 01-Jan-50 00:00:00 GMT") == calendar.timegm(
        (2050, 1, 1, 0, 0, 0)
    )
    assert parse_http_date(b"Friday, 01-Jan-51 00:00:00 GMT") == calendar.timegm(
        (1951, 1, 1, 0, 0, 0)
    )


def test_http_date_writes_imf_fixdate_and_reads_back() -> None:
    assert http_date(SUNDAY) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(SUNDAY + 0.9) == b"Sun, 06 Nov 1994 08:49:37 GMT"  # whole seconds
    chooser = random.Random(9110)
    for _ in range(2000):  # from 1900 to 9999, against the standard library
        seconds = chooser.randrange(-2_208_988_800, 253_402_300_800)
        written = http_date(seconds)
        assert written == email.utils.formatdate(seconds, usegmt=True).encode()
        assert parse_http_date(written) == seconds


# --- byte ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "length", "expected"),
    [
        (b"bytes=0-499", 10_000, [(0, 499)]),  # §14.1.2's examples
        (b"bytes=500-999", 10_000, [(500, 999)]),
        (b"bytes=-500", 10_000, [(9500, 9999)]),
        (b"bytes=9500-", 10_000, [(9500, 9999)]),
        (b"bytes=0-0,-1", 10_000, [(0, 0), (9999, 9999)]),
        (b"bytes= 0-999, 4500-5499, -1000", 10_000, [(0, 999), (4500, 5499), (9000, 9999)]),
        (b"bytes=500-600,601-999", 10_000, [(500, 600), (601, 999)]),  # kept as asked
        (b"bytes=500-700,601-999", 10_000, [(500, 700), (601, 999)]),  # overlaps too
        (b"bytes=0-99", 10, [(0, 9)]),  # last-pos clipped to the length
        (b"bytes=-30", 10, [(0, 9)]),  # a suffix longer than the representation: all of it
        (b"Bytes=1-2", 10, [(1, 2)]),  # range units are case-insensitive (§14.1)
        (b"bytes=1-2,,3-4,", 10, [(1, 2), (3, 4)]),  # empty list elements (§5.6.1)
        (b"bytes=10-, 2-3", 10, [(2, 3)]),  # unsatisfiable specs are left out
        (b"bytes=0-" + b"9" * 5000, 10, [(0, 9)]),  # a position of any length
        # Nothing satisfiable: [] (the caller answers 416 or ignores the field).
        (b"bytes=10-", 10, []),
        (b"bytes=" + b"9" * 5000 + b"-", 10, []),
        (b"bytes=-0", 10, []),  # §14.1.1: a suffix-length of zero is unsatisfiable
        (b"bytes=0-", 0, []),  # an empty representation has no satisfiable range
        (b"bytes=-5", 0, []),
        # To be ignored: None.
        (b"bytes=5-2", 10, None),  # invalid int-range: the whole field (§14.1.1)
        (b"bytes=0-1,5-2", 10, None),
        (b"bytes=a-b", 10, None),
        (b"bytes=1-2-3", 10, None),
        (b"bytes=+1-2", 10, None),
        (b"bytes=-", 10, None),
        (b"bytes=", 10, None),
        (b"bytes=,", 10, None),
        (b"bytes", 10, None),
        (b"0-1", 10, None),
        (b"items=0-1", 10, None),  # another unit
    ],
)
def test_byte_range_sets(value: bytes, length: int, expected: object) -> None:
    assert parse_byte_ranges(value, length, 16) == expected


def test_more_specs_than_the_limit_are_ignored() -> None:
    assert parse_byte_ranges(b"bytes=0-0,2-2,4-4", 10, 3) == [(0, 0), (2, 2), (4, 4)]
    assert parse_byte_ranges(b"bytes=0-0,2-2,4-4", 10, 2) is None
    # Unsatisfiable specs count: a cache that serves one range ignores two.
    assert parse_byte_ranges(b"bytes=0-1,20-30", 10, 1) is None
    assert parse_byte_ranges(b"bytes=0-1,", 10, 1) == [(0, 1)]
