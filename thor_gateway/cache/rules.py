"""RFC 9111 as pure functions: what a shared cache may store, for how long, and when to reuse.

Nothing here does IO or reads a clock: times are passed in (seconds since the epoch, as
floats), headers are the raw ``(name, value)`` byte pairs the gateway passes around, and
every answer is a plain value, so the rules are tested without sockets
(``tests/gateway/cache/test_rules.py``).

- :func:`directives`: Cache-Control (RFC 9111 §5.2) as ``{name: argument or None}``;
- :func:`storable`: may a shared cache store this response at all (§3);
- :func:`freshness_lifetime`: explicit (§4.2.1) or heuristic (§4.2.2);
- :func:`current_age`: §4.2.3, from Age, Date and the request/response times;
- :func:`reuse`: may a stored response answer this request without going to the origin
  (§4.2, §4.2.4, §5.2.1), and if not, what to do instead.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence

from thor.http.headers import get_values as _scan
from thor.http.protocol.abnf import DQUOTE, SEMICOLON, http_date
from thor.http.protocol.abnf import parse_http_date as _parse_http_date
from thor.memo import Memo

__all__ = [
    "DATES",
    "DEFAULT_CACHEABLE",
    "HEURISTIC_CAP",
    "UNDERSTOOD",
    "Directives",
    "Fields",
    "Reuse",
    "current_age",
    "delta_seconds",
    "directives",
    "freshness_lifetime",
    "http_date",
    "parse_http_date",
    "request_directives",
    "response_directives",
    "reuse",
    "storable",
]

# A header section: the parser's list of pairs, or a stored entry's tuple (store.py).
Headers = Sequence[tuple[bytes, bytes]]
Directives = Mapping[bytes, bytes | None]

# RFC 9110 §15.1: the status codes that are heuristically cacheable (a shared cache may
# store them without explicit freshness).  206 is left out: this cache stores only complete
# responses.
DEFAULT_CACHEABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# The status codes whose caching rules this cache implements (RFC 9111 §3 "understood";
# §5.2.2.3 must-understand): the above, and redirects that are stored only when the
# response says how long.
UNDERSTOOD = DEFAULT_CACHEABLE | frozenset({302, 303, 307})
# §4.2.2 leaves the heuristic to the cache; a day is the usual ceiling (10 % of a year-old
# Last-Modified would otherwise keep a response for five weeks).
HEURISTIC_CAP = 86400.0
HEURISTIC_FRACTION = 0.1
# §1.2.2: a delta-seconds too large to represent is taken as 2^31.
DELTA_MAX = 2147483648


class Fields:
    """A header section indexed once by lower-cased name.

    Every function here takes one in place of the list of pairs: a response is looked at
    for a dozen fields when it arrives, and one pass beats a dozen.
    """

    __slots__ = ("by_name", "pairs")

    def __init__(self, pairs: Headers) -> None:
        self.pairs = pairs
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in pairs:
            lname = name.lower()
            found = by_name.get(lname)
            if found is None:
                by_name[lname] = [value]
            else:
                found.append(value)
        self.by_name = by_name


AnyHeaders = Headers | Fields


def _values(headers: AnyHeaders, name: bytes) -> list[bytes]:
    if isinstance(headers, Fields):
        return headers.by_name.get(name, _NONE)
    return _scan(headers, name)


_NONE: list[bytes] = []


# This cache's device token (Surrogate-Capability: thor="Surrogate/1.0"): Surrogate-Control
# directives may be targeted at it.
DEVICE_TOKEN = b"thor"
# The key :func:`response_directives` files a Surrogate-Control max-age under.
SURROGATE_MAX_AGE = b" surrogate-max-age"
_TOKEN_ARG = re.compile(rb'\s*([^\s=,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?\s*')


def directives(headers: AnyHeaders, name: bytes = b"cache-control") -> dict[bytes, bytes | None]:
    """Cache-Control directives, lower-cased names; the first of a repeated one wins.

    §4.2.1: with conflicting values "the first occurrence should be used".  A quoted
    argument is unquoted (§5.2: recipients accept both forms).
    """
    out: dict[bytes, bytes | None] = {}
    for value in _values(headers, name):
        for member in _split_members(value):
            match = _TOKEN_ARG.fullmatch(member)
            if match is None:
                continue
            key = match.group(1).lower()
            arg = match.group(2)
            if arg is not None and arg[:1] == b'"':
                arg = re.sub(rb"\\(.)", rb"\1", arg[1:-1])
            out.setdefault(key, arg)
    return out


def _split_members(value: bytes) -> list[bytes]:
    if DQUOTE not in value:  # no quoted argument: every comma separates
        return [m for m in value.split(b",") if m.strip()]
    # Commas inside a quoted argument (no-cache="a, b") do not separate directives.
    members: list[bytes] = []
    start = 0
    quoted = False
    escaped = False
    for i, byte in enumerate(value):
        if escaped:
            escaped = False
        elif byte == 0x5C and quoted:  # backslash
            escaped = True
        elif byte == 0x22:  # "
            quoted = not quoted
        elif byte == 0x2C and not quoted:  # ,
            members.append(value[start:i])
            start = i + 1
    members.append(value[start:])
    return [m for m in members if m.strip()]


_RESPONSE_CC: Memo[bytes, dict[bytes, bytes | None]] = Memo(256)


def response_directives(headers: AnyHeaders) -> dict[bytes, bytes | None]:
    """A response's Cache-Control, overridden by Surrogate-Control where it speaks.

    Surrogate-Control (W3C Edge Architecture 1.0) addresses gateway caches: its
    ``max-age`` beats every Cache-Control freshness and ``no-store``, its ``no-store``
    beats a Cache-Control freshness.  A directive targeted at a device
    (``max-age=60;edge1``) is for another cache, and ignored.
    """
    if not _values(headers, b"surrogate-control"):
        values = _values(headers, b"cache-control")
        if len(values) == 1:
            # Responses from an origin carry the same few Cache-Control values: parsed once
            # each (the dict is shared, so no caller changes it).
            known = _RESPONSE_CC.get(values[0])
            if known is None:
                known = directives(headers)
                _RESPONSE_CC.put(values[0], known)
            return known
        return directives(headers)
    found = directives(headers)
    surrogate: dict[bytes, bytes | None] = {}
    for name, value in directives(headers, b"surrogate-control").items():
        name, _, name_target = name.partition(b";")
        target = name_target
        if value is not None and SEMICOLON in value:
            value, _, target = value.partition(b";")
        if target.strip() in (b"", DEVICE_TOKEN):
            surrogate.setdefault(name, value)
    if b"no-store" in surrogate:
        found[b"no-store"] = None
    elif b"max-age" in surrogate:
        found.pop(b"no-store", None)
        found.pop(b"private", None)
        found[SURROGATE_MAX_AGE] = surrogate[b"max-age"]
    return found


def request_directives(headers: AnyHeaders) -> dict[bytes, bytes | None]:
    """A request's directives; ``Pragma: no-cache`` counts when Cache-Control is absent.

    (RFC 9111 §5.4 deprecates Pragma, but §5.4 of RFC 7234 defined exactly this.)
    """
    found = directives(headers)
    if not _values(headers, b"cache-control"):
        pragma = [p.strip().lower() for v in _values(headers, b"pragma") for p in v.split(b",")]
        if b"no-cache" in pragma:
            found[b"no-cache"] = None
    return found


def delta_seconds(argument: bytes | None) -> int | None:
    """A delta-seconds argument (§1.2.2), or None when missing or malformed."""
    if argument is None or not argument.isdigit():
        return None
    return min(int(argument), DELTA_MAX)


# --- HTTP dates (RFC 9110 §5.6.7) -----------------------------------------------------------

# The reader and writer of HTTP-dates are thor.http.protocol.abnf's (one for the library and
# every part of the gateway). The cache reads through a small memo: an origin's responses
# carry the same Date within a second, and the same Last-Modified or Expires for long.
_DATES: dict[bytes, float | None] = {}
DATES = _DATES  # (read by the store where a call would cost more than the lookup)
_DATES_MAX = 256  # bounded: cleared when full


def parse_http_date(value: bytes, now: float | None = None) -> float | None:
    """Seconds since the epoch of an HTTP-date, or None if it is not one (RFC 9110 §5.6.7)."""
    if now is None:
        known = _DATES.get(value, _DATES)
        if known is not _DATES:
            return known  # type: ignore[return-value]
        if len(_DATES) >= _DATES_MAX:
            _DATES.clear()
        seconds = _parse_http_date(value)
        # (kept as a float: the clock's seconds are, and arithmetic that mixes a float with
        # an int of more than 30 bits is not specialised by CPython)
        _DATES[value] = parsed = None if seconds is None else float(seconds)
        return parsed
    return _parse_http_date(value, now)


def _first_date(headers: AnyHeaders, name: bytes) -> float | None:
    values = _values(headers, name)
    return parse_http_date(values[0]) if values else None


# --- storing (§3) ----------------------------------------------------------------------------


def storable(
    method: bytes,
    status: int,
    request_headers: AnyHeaders,
    response_headers: AnyHeaders,
    req_cc: Directives | None = None,
    res_cc: Directives | None = None,
) -> bool:
    """May a shared cache store this response (RFC 9111 §3)?"""
    if method != b"GET":  # the only method this cache stores (HEAD is answered from GET)
        return False
    req_cc = directives(request_headers) if req_cc is None else req_cc
    res_cc = response_directives(response_headers) if res_cc is None else res_cc
    if b"must-understand" in res_cc:
        # §5.2.2.3: store only a status whose rules are understood; no-store is then ignored.
        if status not in UNDERSTOOD:
            return False
    elif b"no-store" in res_cc or status < 200 or status in (206, 304):
        # Any other final status is understood as far as storing goes (§3: its freshness
        # comes from explicit directives below); a 206 is a part, a 304 has no content.
        return False
    if b"no-store" in req_cc:
        return False
    if b"private" in res_cc:  # §5.2.2.7: a shared cache MUST NOT store it
        return False
    if _values(request_headers, b"authorization") and not (
        # §3.5: only these let a shared cache store a response to an authorised request.
        b"must-revalidate" in res_cc or b"public" in res_cc or b"s-maxage" in res_cc
    ):
        return False
    if any(v.strip() == b"*" for v in _vary_members(response_headers)):
        return False  # §4.1: Vary: * never matches; storing it is useless
    return (
        b"public" in res_cc
        or SURROGATE_MAX_AGE in res_cc
        or b"s-maxage" in res_cc
        or b"max-age" in res_cc
        or bool(_values(response_headers, b"expires"))
        or status in DEFAULT_CACHEABLE
    )


def _vary_members(headers: AnyHeaders) -> list[bytes]:
    return [m.strip() for v in _values(headers, b"vary") for m in v.split(b",") if m.strip()]


# --- freshness (§4.2) ------------------------------------------------------------------------


def freshness_lifetime(
    status: int, headers: AnyHeaders, response_time: float, res_cc: Directives | None = None
) -> float:
    """§4.2.1 for a shared cache: s-maxage, max-age, Expires - Date, else heuristic (§4.2.2).

    A malformed max-age or s-maxage makes the response stale (0), as does an invalid
    Expires (§5.3: "MUST interpret invalid date formats ... as representing a time in the
    past").
    """
    res_cc = response_directives(headers) if res_cc is None else res_cc
    for name in (SURROGATE_MAX_AGE, b"s-maxage", b"max-age"):
        if name in res_cc:
            value = delta_seconds(res_cc[name])
            return 0.0 if value is None else float(value)
    expires_values = _values(headers, b"expires")
    if expires_values:
        expires = parse_http_date(expires_values[0])
        if expires is None:
            return 0.0
        date = _first_date(headers, b"date")
        return max(0.0, expires - (response_time if date is None else date))
    if status in DEFAULT_CACHEABLE or b"public" in res_cc:
        last_modified = _first_date(headers, b"last-modified")
        if last_modified is not None:
            date = _first_date(headers, b"date")
            since = (response_time if date is None else date) - last_modified
            if since > 0:
                return min(since * HEURISTIC_FRACTION, HEURISTIC_CAP)
    return 0.0


def current_age(
    headers: AnyHeaders, request_time: float, response_time: float, now: float
) -> float:
    """RFC 9111 §4.2.3, with the times this cache recorded when it sent and received."""
    date = _first_date(headers, b"date")
    date_value = response_time if date is None else date
    age_values = _values(headers, b"age")
    age_value = 0
    if age_values:
        # One line, one delta-seconds: anything else (a list, a sign, a fraction, a
        # parameter) is not an Age this cache can trust, so the response counts as old.
        parsed = delta_seconds(age_values[0].strip()) if len(age_values) == 1 else None
        age_value = DELTA_MAX if parsed is None else parsed
    apparent_age = max(0.0, response_time - date_value)
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = age_value + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    return corrected_initial_age + max(0.0, now - response_time)


# --- reuse (§4) ------------------------------------------------------------------------------


class Reuse(enum.Enum):
    """What a stored response can do for one request."""

    FRESH = "fresh"  # serve it (§4.2)
    STALE = "stale"  # serve it stale, the request allows (§4.2.4, max-stale)
    STALE_REVALIDATE = "swr"  # serve it stale and revalidate behind (RFC 5861 §3)
    VALIDATE = "validate"  # send a conditional request first (§4.3)


def reuse(
    req_cc: Directives, res_cc: Directives, lifetime: float, age: float, *, shared: bool = True
) -> Reuse:
    """May a stored response with this lifetime and age answer a request with ``req_cc``?"""
    if b"no-cache" in req_cc or b"no-cache" in res_cc:
        return Reuse.VALIDATE  # §5.2.1.4, §5.2.2.4
    max_age = delta_seconds(req_cc.get(b"max-age")) if b"max-age" in req_cc else None
    if b"max-age" in req_cc and (max_age is None or age > max_age):
        return Reuse.VALIDATE  # §5.2.1.1
    fresh = lifetime > age
    if fresh:
        if b"min-fresh" in req_cc:
            min_fresh = delta_seconds(req_cc[b"min-fresh"])
            if min_fresh is None or lifetime - age < min_fresh:
                return Reuse.VALIDATE  # §5.2.1.3
        return Reuse.FRESH
    # Stale: only where nothing forbids it (§4.2.4: must-revalidate; §5.2.2.8
    # proxy-revalidate and §5.2.2.10 s-maxage for a shared cache).
    if b"must-revalidate" in res_cc or (
        shared and (b"proxy-revalidate" in res_cc or b"s-maxage" in res_cc)
    ):
        return Reuse.VALIDATE
    staleness = age - lifetime
    if b"max-stale" in req_cc:
        argument = req_cc[b"max-stale"]
        limit = delta_seconds(argument)
        if argument is None or (limit is not None and staleness <= limit):
            return Reuse.STALE  # §5.2.1.2
    window = delta_seconds(res_cc.get(b"stale-while-revalidate"))
    if window is not None and staleness <= window:
        return Reuse.STALE_REVALIDATE
    return Reuse.VALIDATE


def stale_if_error(
    req_cc: Directives,
    res_cc: Directives,
    lifetime: float,
    age: float,
    *,
    disconnected: bool = False,
) -> bool:
    """May a stale response stand in for an error (RFC 5861 §4), or for no answer at all?

    ``disconnected``: the origin could not be reached; RFC 9111 §4.2.4 lets a cache serve
    stale then without being asked to.  Either way only where the response does not forbid
    it: ``must-revalidate``, ``proxy-revalidate``, ``s-maxage`` (§4.2.4, §5.2.2.10) and
    ``no-cache`` (§5.2.2.4: reuse needs a successful validation).
    """
    if (
        b"must-revalidate" in res_cc
        or b"proxy-revalidate" in res_cc
        or b"s-maxage" in res_cc
        or b"no-cache" in res_cc
    ):
        return False
    if disconnected:
        return True
    staleness = age - lifetime
    for cc in (req_cc, res_cc):
        window = delta_seconds(cc.get(b"stale-if-error"))
        if window is not None and staleness <= window:
            return True
    return False


def strip_names(values: Iterable[bytes]) -> list[bytes]:
    """Lower-cased field names of a list (Vary, Connection, no-cache="...")."""
    return [m.strip().lower() for v in values for m in v.split(b",") if m.strip()]
