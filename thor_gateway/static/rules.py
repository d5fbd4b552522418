"""Static files, the pure part: safe paths, validators, conditionals, ranges, codings.

Nothing here does IO; :mod:`thor_gateway.static.handler` opens the files and streams them.

- :func:`safe_relative` turns the decoded path under a static prefix into a relative
  file name, or refuses it (traversal, hidden files, NUL, backslash).
- :func:`evaluate_preconditions` follows RFC 9110 §13.2.2's order: If-Match, then
  If-Unmodified-Since, then If-None-Match, then If-Modified-Since, then If-Range.
- :func:`parse_range` reads a ``Range`` field (RFC 9110 §14.1.1) against a length.
- :func:`gzip_accepted` reads ``Accept-Encoding`` (RFC 9110 §12.5.3) for a ``.gz`` sibling.
"""

from __future__ import annotations

import enum
import mimetypes
import re

from thor.http.protocol.abnf import PERCENT, http_date, parse_byte_ranges, parse_http_date

__all__ = [
    "Precondition",
    "RangeResult",
    "content_type",
    "entity_tag",
    "evaluate_preconditions",
    "gzip_accepted",
    "http_date",
    "parse_http_date",
    "parse_range",
    "raw_path_refused",
    "safe_relative",
]

RawHeaders = list[tuple[bytes, bytes]]

# Percent-encodings that would smuggle a separator or a NUL past the segment checks once
# the router has decoded the path ("%2e%2e" decodes to "..", which the segment check sees).
_ENCODED_REFUSED = re.compile(rb"%(?:2f|5c|00)", re.IGNORECASE)


def raw_path_refused(raw_path: bytes) -> bool:
    """True when the path as sent encodes '/', '\\' or NUL: no file name is spelled so."""
    return PERCENT in raw_path and _ENCODED_REFUSED.search(raw_path) is not None


def safe_relative(path_info: bytes) -> tuple[bytes, bool] | None:
    """(relative name, ends with '/') for a decoded path under a prefix; None to refuse.

    Refused: a segment that starts with '.' (``.``, ``..``, hidden files such as
    ``.env`` or ``.git``), an empty segment (``//``), a backslash (a separator on
    Windows, and never in a URL path we generate), a NUL.  ``b""`` or ``b"/"`` is the
    folder itself.
    """
    if 0x5C in path_info or 0x00 in path_info:  # "\\", NUL (int needles: see abnf.PERCENT)
        return None
    if path_info and path_info[:1] != b"/":
        return None
    trailing = path_info.endswith(b"/")
    inner = path_info[1:-1] if trailing else path_info[1:]
    if not inner:
        return b"", trailing
    for segment in inner.split(b"/"):
        if not segment or segment[:1] == b".":
            return None
    return inner, trailing


# ------------------------------------------------------------------ validators

# http_date and parse_http_date (RFC 9110 §5.6.7) are thor.http.protocol.abnf's, the one
# writer and reader of HTTP-dates, re-exported here.


def entity_tag(mtime_ns: int, size: int, coding: bytes = b"") -> bytes:
    """A strong entity tag from the file's modification time and size.

    Each representation has its own tag (RFC 9110 §8.8.3): the gzip one ends in "-gz".
    """
    suffix = b"-" + coding if coding else b""
    return b'"%x-%x%s"' % (mtime_ns, size, suffix)


def _tags(value: bytes) -> list[bytes]:
    """The entity tags of an If-Match / If-None-Match value (``*`` kept as is)."""
    return [tag.strip() for tag in value.split(b",") if tag.strip()]


def _weak_match(tags: list[bytes], etag: bytes) -> bool:
    """Weak comparison (§8.8.3.2): W/ prefixes ignored."""
    return any(tag == b"*" or tag.removeprefix(b"W/") == etag for tag in tags)


def _strong_match(tags: list[bytes], etag: bytes) -> bool:
    """Strong comparison: both tags strong and equal (``*`` matches an existing file)."""
    return any(tag == b"*" or tag == etag for tag in tags)


class Precondition(enum.Enum):
    """What the conditional fields decide (RFC 9110 §13.2.2)."""

    PROCEED = "proceed"  # send the representation (Range honoured)
    IGNORE_RANGE = "ignore range"  # send the whole representation (If-Range failed)
    NOT_MODIFIED = "304"
    FAILED = "412"


def evaluate_preconditions(
    method: bytes, headers: RawHeaders, etag: bytes, mtime: int
) -> Precondition:
    """Evaluate the conditional fields of a GET or HEAD in the order of §13.2.2.

    ``mtime`` is the Last-Modified time in whole seconds (what the client was told).
    """
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        if name[:3].lower() == b"if-":
            key = name.lower()
            # Repeated If-Match / If-None-Match lines are one comma-separated list.
            fields[key] = fields[key] + b"," + value if key in fields else value
    if not fields:
        return Precondition.PROCEED
    if_match = fields.get(b"if-match")
    if if_match is not None:
        # Step 1: a false If-Match is 412 (a state-changing method might test for success,
        # which a GET never is).
        if not _strong_match(_tags(if_match), etag):
            return Precondition.FAILED
    else:
        since = fields.get(b"if-unmodified-since")
        date = parse_http_date(since) if since is not None else None
        if date is not None and mtime > date:
            return Precondition.FAILED  # step 2
    if_none_match = fields.get(b"if-none-match")
    if if_none_match is not None:
        if _weak_match(_tags(if_none_match), etag):
            return Precondition.NOT_MODIFIED  # step 3: GET and HEAD get 304
    else:
        since = fields.get(b"if-modified-since")
        date = parse_http_date(since) if since is not None else None
        if date is not None and mtime <= date:
            return Precondition.NOT_MODIFIED  # step 4
    if_range = fields.get(b"if-range")
    if if_range is not None and method == b"GET" and not _if_range_holds(if_range, etag, mtime):
        return Precondition.IGNORE_RANGE  # step 5: the Range field is ignored
    return Precondition.PROCEED


def _if_range_holds(value: bytes, etag: bytes, mtime: int) -> bool:
    """§13.1.5: an entity tag compares strongly; a date must equal Last-Modified exactly."""
    value = value.strip()
    if value[:1] == b'"' or value[:2] == b"W/":
        return value == etag  # a weak tag never matches
    date = parse_http_date(value)
    return date is not None and date == mtime


# ------------------------------------------------------------------ ranges

# More ranges than this in one request is an abuse (§14.2 lets a server ignore them).
MAX_RANGES = 16


class RangeResult(enum.Enum):
    """A Range field that cannot be honoured: ignore it (200), or 416."""

    IGNORE = "ignore"
    UNSATISFIABLE = "416"


def parse_range(value: bytes, length: int) -> list[tuple[int, int]] | RangeResult:
    """The satisfiable ranges as (first, last) inclusive, in request order.

    A field in another unit, or that does not parse, is ignored (§14.2: the recipient
    MUST ignore a Range it does not understand); one with no satisfiable range is 416.
    """
    ranges = parse_byte_ranges(value, length, MAX_RANGES)
    if ranges is None:
        return RangeResult.IGNORE
    return ranges if ranges else RangeResult.UNSATISFIABLE


# ------------------------------------------------------------------ content


def gzip_accepted(headers: RawHeaders) -> bool:
    """Whether Accept-Encoding accepts gzip (§12.5.3), for a precompressed ``.gz`` sibling.

    gzip is taken when its qvalue (or that of ``*``, when gzip is not listed) is above 0
    and not below the qvalue of an ``identity`` the client listed explicitly: ``gzip;q=0``
    refuses it, ``gzip;q=0.5, identity`` prefers the plain file.  An unlisted identity
    does not compete (every client accepts it), as with nginx's ``gzip_static``.
    """
    value = None
    for name, field_value in headers:
        if len(name) == 15 and name.lower() == b"accept-encoding":
            value = field_value if value is None else value + b"," + field_value
    if not value:
        return False
    gzip_q = star_q = None
    identity_q = 0.0
    for item in value.lower().split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip()
        if coding in (b"gzip", b"x-gzip"):
            q = _qvalue(params)
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == b"*":
            star_q = _qvalue(params)
        elif coding == b"identity":
            identity_q = _qvalue(params)
    if gzip_q is None:
        gzip_q = star_q or 0.0
    return gzip_q > 0 and gzip_q >= identity_q


def _qvalue(params: bytes) -> float:
    for param in params.split(b";"):
        key, _, number = param.partition(b"=")
        if key.strip() == b"q":
            try:
                return min(1.0, max(0.0, float(number.strip())))
            except ValueError:
                return 0.0
    return 1.0


_TEXT_TYPES = {"application/javascript", "application/json", "application/xml", "image/svg+xml"}
_TYPES: dict[bytes, bytes] = {}


def content_type(name: bytes) -> bytes:
    """The Content-Type of a file name, from :mod:`mimetypes`; text types in UTF-8."""
    dot = name.rfind(b".")
    extension = name[dot:].lower() if dot > name.rfind(b"/") else b""
    known = _TYPES.get(extension)
    if known is None:
        guessed, encoding = mimetypes.guess_type("x" + extension.decode("latin-1"))
        if encoding is not None or guessed is None:
            # A compressed file asked for by its own name is served as it is stored.
            guessed = "application/gzip" if encoding == "gzip" else "application/octet-stream"
        if guessed.startswith("text/") or guessed in _TEXT_TYPES:
            guessed += "; charset=utf-8"
        known = _TYPES[extension] = guessed.encode("ascii")
    return known
