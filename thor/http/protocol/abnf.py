"""RFC 9110 / RFC 9112 grammar as compiled regular expressions, and the readers of two
field values that servers and caches both parse: HTTP-dates (RFC 9110 §5.6.7) and byte-range
sets (§14.1.2).

Every pattern is written so that it cannot backtrack catastrophically: each
repetition is followed by a character it cannot itself match, so matching is
linear in the input (Appendix B54, CVE-2020-5236). Patterns are used with
``fullmatch`` (optionally with ``pos``/``endpos`` so the buffer is not copied).
"""

from __future__ import annotations

import re

# Single octets as ints, for membership tests on hot paths: ``PERCENT in path`` is one
# memchr, while ``b"%" in path`` first tries the needle as an int and, in CPython 3.11,
# raises and clears a TypeError on the way (about 1,800 machine instructions a test;
# callgrind). A longer needle has no such form: ``find`` avoids the exception but parses its
# arguments (about 1,200 instructions), so a short loop may be cheaper still.
CR = 0x0D
DQUOTE = 0x22
HASH = 0x23
PERCENT = 0x25
COMMA = 0x2C
SEMICOLON = 0x3B
QUESTION_MARK = 0x3F

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                          "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA ; token = 1*tchar
TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"
token_re = re.compile(TOKEN)

# RFC 9110 §5.5: field-value = *field-content ; field-vchar = VCHAR / obs-text; SP and HTAB
# allowed inside. Anything else (NUL, CR, LF and the other CTLs, DEL) is invalid.
FIELD_CHAR = rb"[\t\x20-\x7e\x80-\xff]"
BAD_VALUE_OCTETS = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
bad_value_re = re.compile(b"[" + re.escape(BAD_VALUE_OCTETS) + b"]")
# A writer deletes BAD_VALUE_OCTETS with bytes.translate (a value is valid when that
# deletes nothing): one pass in C over a table, where the regex search steps through its
# character class octet by octet, about a third of the machine instructions on a 300-byte
# section of joined values (callgrind), checked for every message written.

# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, each ended by CRLF. This
# validates a whole field section (without the empty line) in one call; values are stripped
# of OWS afterwards with bytes.strip, which is linear where a regex would not be.
fields_re = re.compile(rb"(?:" + TOKEN + rb":" + FIELD_CHAR + rb"*\r\n)*")
# Extracts (name, value with trailing OWS) from a field section fields_re has validated.
field_pairs_re = re.compile(rb"(" + TOKEN + rb"):[ \t]*([^\r]*)\r\n")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version. The target is checked
# for shape separately (origin/absolute/authority/asterisk form, RFC 9112 §3.2); its
# characters are visible ASCII (RFC 3986's, a subset, is what a writer must produce).
TARGET_CHAR = rb"[\x21-\x7e]"
target_re = re.compile(TARGET_CHAR + rb"+")
request_line_re = re.compile(rb"(" + TOKEN + rb") (" + TARGET_CHAR + rb"+) HTTP/([0-9])\.([0-9])")

# Fast path for the common case: an origin-form target (no "#") and HTTP/1.0 or 1.1.
request_line_fast_re = re.compile(rb"(" + TOKEN + rb") (/[\x21\x22\x24-\x7e]*) HTTP/(1\.[01])")

# The whole head of a common request in one call (request parser fast path): the fast request
# line, CRLF, the field section exactly as fields_re has it, and the empty line. No line in it
# is empty or holds a CR or LF, so a match ends at the first CRLFCRLF, where the scanner would
# have ended the block. Groups: method, target, version.
request_head_fast_re = re.compile(
    rb"(" + TOKEN + rb") (/[\x21\x22\x24-\x7e]*) HTTP/(1\.[01])\r\n"
    rb"(?:" + TOKEN + rb":" + FIELD_CHAR + rb"*\r\n)*\r\n"
)

# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
status_line_re = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3}) (" + FIELD_CHAR + rb"*)")
# A status line without the SP before an empty reason, which RFC 9112 §4 does not allow but
# which old servers send; accepted on the client side (see docs/http-protocol.md).
status_line_bare_re = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})")
# Well-formed HTTP-version of an unsupported version (RFC 9110 §2.5 / §15.6.6 -> 505).
version_re = re.compile(rb"HTTP/[0-9]\.[0-9]")

# RFC 9112 §3.2.1 origin-form = absolute-path [ "?" query ]; §3.2.2 absolute-form (http/https
# only: we are an HTTP intermediary); §3.2.3 authority-form = uri-host ":" port;
# §3.2.4 asterisk-form = "*". The fragment ("#") is never sent (RFC 9110 §4.2.4 / RFC 3986 §3.5).
# An http(s) URI with an empty host MUST be rejected (RFC 9110 §4.2.1), and one with userinfo
# SHOULD be (§4.2.4: it is a known phishing vector): the authority is 1*( not / ? # @ ).
absolute_form_re = re.compile(rb"[hH][tT][tT][pP][sS]?://[^/?#@]+(?:[/?][^#]*)?")
_HOST = rb"(?:\[[0-9A-Fa-f:.vV]+\]|[-A-Za-z0-9._~!$&'()*+,;=%]*)"
authority_form_re = re.compile(_HOST + rb":[0-9]{1,5}")
# RFC 9110 §7.2: Host = uri-host [ ":" port ]
host_re = re.compile(_HOST + rb"(?::[0-9]*)?")

# RFC 9112 §6.1 / RFC 9110 §10.1.4: transfer-coding = token *( OWS ";" OWS transfer-parameter )
# transfer-parameter = token BWS "=" BWS ( token / quoted-string )
QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_PARAM_VALUE = rb"(?:" + TOKEN + rb"|" + QUOTED + rb")"
transfer_coding_re = re.compile(
    TOKEN + rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"[ \t]*=[ \t]*" + _PARAM_VALUE + rb")*"
)

# RFC 9112 §6.2: Content-Length = 1*DIGIT
content_length_re = re.compile(rb"[0-9]+")

# RFC 9112 §7.1: chunk-size = 1*HEXDIG; §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name
# [ BWS "=" BWS chunk-ext-val ] ); chunk-ext-val = token / quoted-string
chunk_line_re = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*" + _PARAM_VALUE + rb")?)*"
)


# --- HTTP-date (RFC 9110 §5.6.7) --------------------------------------------------------------
# HTTP-date = IMF-fixdate / obs-date; obs-date = rfc850-date / asctime-date. A recipient MUST
# accept all three. Read without case (a lenient recipient; senders use IMF-fixdate's case).
_DAY = rb"(?:mon|tue|wed|thu|fri|sat|sun)"
_DAY_L = rb"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MON = rb"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_TIME = rb"([0-9]{2}):([0-9]{2}):([0-9]{2})"
# IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT; date1 = day SP month SP year
imf_fixdate_re = re.compile(_DAY + rb", ([0-9]{2}) " + _MON + rb" ([0-9]{4}) " + _TIME + rb" gmt")
# rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT; date2 = day "-" month "-" 2DIGIT
rfc850_date_re = re.compile(_DAY_L + rb", ([0-9]{2})-" + _MON + rb"-([0-9]{2}) " + _TIME + rb" gmt")
# asctime-date = day-name SP date3 SP time-of-day SP year; date3 = month SP ( 2DIGIT / SP DIGIT )
asctime_date_re = re.compile(_DAY + rb" " + _MON + rb" ([ 0-9][0-9]) " + _TIME + rb" ([0-9]{4})")
_MONTHS = {m: i for i, m in enumerate(b"jan feb mar apr may jun jul aug sep oct nov dec".split())}
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_DAY_NAMES = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTH_NAMES = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def parse_http_date(value: bytes, now: float | None = None) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of its three formats, or None.

    §5.6.7: a two-digit rfc850 year that would be more than 50 years after ``now``
    (seconds since the epoch) is the latest such year in the past. This package reads no
    clock, so without ``now`` the century is chosen as if it were the year 2000 (years
    1951 to 2050). The day name is not checked against the date.
    """
    text = value.strip(b" \t").lower()
    if (m := imf_fixdate_re.fullmatch(text)) is not None:
        day, month, year, hh, mm, ss = m.groups()
        number = int(year)
    elif (m := rfc850_date_re.fullmatch(text)) is not None:
        day, month, yy, hh, mm, ss = m.groups()
        this_year = 2000 if now is None else _civil(int(now) // 86400)[0]
        number = this_year - this_year % 100 + int(yy)
        if number > this_year + 50:
            number -= 100
    elif (m := asctime_date_re.fullmatch(text)) is not None:
        month, day, hh, mm, ss, year = m.groups()
        number = int(year)
    else:
        return None
    index = _MONTHS[month]
    mday, hour, minute, second = int(day), int(hh), int(mm), int(ss)
    leap = number % 4 == 0 and (number % 100 != 0 or number % 400 == 0)
    # §5.6.7: second may be 60 (a leap second); a day past its month's end is no date.
    if not 1 <= mday <= _MONTH_DAYS[index] + (index == 1 and leap) or hour > 23:
        return None
    if minute > 59 or second > 60:
        return None
    # Days since 1970-01-01 in the proleptic Gregorian calendar.
    before = number - 1
    days = (
        365 * (number - 1970)
        + (before // 4 - before // 100 + before // 400)
        - (1969 // 4 - 1969 // 100 + 1969 // 400)
        + _DAYS_BEFORE[index]
        + (index > 1 and leap)
        + mday
        - 1
    )
    return days * 86400 + hour * 3600 + minute * 60 + second


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month from 0, day of the month) of a count of days since 1970-01-01."""
    # The proleptic Gregorian date of a day count, by 400-year eras of 146097 days counted
    # from 0000-03-01 (so a leap day ends its year); 719468 days lie between it and 1970.
    era, day_of_era = divmod(days + 719_468, 146_097)
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * day_of_year + 2) // 153  # months from March
    mday = day_of_year - (153 * shifted + 2) // 5 + 1
    month = shifted + 2 if shifted < 10 else shifted - 10  # 0 is January
    return year_of_era + era * 400 + (month < 2), month, mday


def http_date(seconds: float) -> bytes:
    """The IMF-fixdate (§5.6.7, what a sender generates) of ``seconds`` since the epoch."""
    days, rest = divmod(int(seconds), 86400)
    year, month, mday = _civil(days)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAY_NAMES[(days + 3) % 7],  # 1970-01-01 was a Thursday
        mday,
        _MONTH_NAMES[month],
        year,
        rest // 3600,
        rest // 60 % 60,
        rest % 60,
    )


# --- byte ranges (RFC 9110 §14.1) -------------------------------------------------------------
# ranges-specifier = range-unit "=" range-set; range-set = 1#range-spec (a list: empty
# elements and OWS around commas allowed, §5.6.1); for bytes (§14.1.2)
#   int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length
# Blanks around "=" and "-" are read too (a lenient recipient; no sender needs them).
_RANGE_SPEC_RE = re.compile(rb"[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")
# Positions longer than this are taken as this large: past any representation, and int()
# of thousands of digits would be refused (sys.int_info.default_max_str_digits).
_POSITION_DIGITS = 18


def _position(digits: bytes) -> int:
    return int(digits) if len(digits) <= _POSITION_DIGITS else 10**_POSITION_DIGITS


def parse_byte_ranges(value: bytes, length: int, limit: int) -> list[tuple[int, int]] | None:
    """The satisfiable ranges of a Range value against a ``length``-byte representation,
    as ``(first, last)`` inclusive in request order; ``[]`` when none is satisfiable.

    None when the field is to be ignored (§14.2: a recipient ignores a Range it does not
    understand): another unit, a spec that does not parse, an invalid int-range (last-pos
    below first-pos, §14.1.1: the whole field is then invalid), no spec at all, or more
    than ``limit`` specs. What an empty list means (416, §15.5.17) and how many ranges to
    honour is the caller's. Satisfiable (§14.1.1): an int-range whose first-pos is below
    the length, a suffix-range with a non-zero suffix-length (the whole representation
    when it is shorter), neither for an empty representation; last-pos is clipped to it.
    """
    unit, eq, specs = value.partition(b"=")
    if not eq or unit.strip(b" \t").lower() != b"bytes":
        return None
    ranges: list[tuple[int, int]] = []
    count = 0
    for spec in specs.split(b","):
        match = _RANGE_SPEC_RE.fullmatch(spec)
        if match is None:
            if spec.strip(b" \t"):
                return None
            continue  # an empty list element (§5.6.1)
        count += 1
        if count > limit:
            return None
        first_text, last_text = match.groups()
        if first_text:
            first = _position(first_text)
            if last_text:
                last = _position(last_text)
                if last < first:
                    return None
            else:
                last = length - 1
            if first < length:
                ranges.append((first, min(last, length - 1)))
        elif last_text:
            suffix = _position(last_text)
            if suffix and length:
                ranges.append((max(0, length - suffix), length - 1))
        else:
            return None  # "-" alone
    return ranges if count else None
