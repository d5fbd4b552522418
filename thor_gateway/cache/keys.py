"""Which stored response a request selects, and how stored responses change: pure functions.

- :func:`primary_key`: the target URI (RFC 9111 §2), scheme and authority included;
- :func:`request_shape`: what a request's field names alone tell the cache (is it *plain*,
  where is its Host), worked out once per list of names (clients repeat a few);
- :func:`vary_names`, :func:`secondary_key`: §4.1's secondary key, the request's values of
  the fields a response's Vary names, normalised (lines combined, whitespace around list
  commas removed), so requests that differ only in spelling share one response;
- :func:`language_chosen`: a response negotiated on Accept-Language that a request with
  other values would get all the same (§4.1, by the field's q-values);
- :func:`freshen`: §3.2 / §4.3.4, a stored response's header section updated from a 304;
- :func:`invalidated`: §4.4, the URIs an unsafe request makes stale;
- :func:`not_modified`: RFC 9110 §13.1.1, §13.1.3, §13.2.2: does a stored response satisfy the
  client's own conditional request (then the cache answers 304 itself);
- :func:`byte_range`: the range a Range field asks of a stored response (RFC 9110 §14.2);
- :func:`cache_status`: the Cache-Status field (RFC 9211).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from thor.http.headers import get_values
from thor.http.protocol.abnf import parse_byte_ranges
from thor.memo import Memo
from thor_gateway.cache.rules import parse_http_date, strip_names

__all__ = [
    "CONDITIONAL",
    "NOT_SERVED",
    "SCHEME_PREFIX",
    "SPECIAL",
    "Pick",
    "RequestShape",
    "SecondaryKey",
    "byte_range",
    "cache_status",
    "freshen",
    "freshen_plan",
    "invalidated",
    "known_shape",
    "language_chosen",
    "not_modified",
    "picker",
    "primary_key",
    "request_shape",
    "secondary_key",
    "validators_match",
    "vary_names",
]

# A header section: the parser's list of pairs, or a stored entry's tuple (store.py).
Headers = Sequence[tuple[bytes, bytes]]
SecondaryKey = tuple[tuple[bytes, bytes | None], ...]
# Fields whose values are lists of case-insensitive tokens with weights (RFC 9110 §12.5:
# codings, charsets, language tags, media types): normalised further (below).
_PARAM_BLANKS = re.compile(rb"[ \t]*([;=])[ \t]*")
# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(rb"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_SCHEMES = {"http": b"http", "https": b"https"}
# A primary key starts with one of these (then the Host, lower-cased, then the target).
SCHEME_PREFIX = {name: scheme + b"://" for name, scheme in _SCHEMES.items()}
_NAME = itemgetter(0)
_CASELESS = frozenset({b"accept", b"accept-charset", b"accept-encoding", b"accept-language"})

# Fields a stored response is not served with as stored: the cache writes its own.
NOT_SERVED = frozenset({b"age", b"content-length", b"transfer-encoding"})

# Request fields the cache takes off a request it forwards to fill itself, and evaluates
# against the response instead (so the stored response is a whole one).
CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since", b"if-match", b"if-range"})

# §3.1: fields a cache does not store or update from a newer response: hop-by-hop fields
# (RFC 9110 §7.6.1), and, for a 304, Content-Length (§3.2: it describes the 304's own empty
# body, not the stored one).
_NOT_UPDATED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"trailer",
        # and what describes the stored content itself, which a 304 does not replace:
        # its length, coding, digest, range and entity tag (http-cache-tests agrees).
        b"content-length",
        b"content-encoding",
        b"content-md5",
        b"content-range",
        b"etag",
    }
)


def primary_key(scheme: str, headers: Headers, target: bytes) -> bytes:
    """The target URI: ``scheme://host/path?query`` (the authority lower-cased)."""
    if target[:1] != b"/" and target[:8].lower().startswith((b"http://", b"https://")):
        scheme_part, _, rest = target.partition(b"://")
        authority, slash, path = rest.partition(b"/")
        return scheme_part.lower() + b"://" + authority.lower() + slash + path
    for name, value in headers:  # the first Host (one pass, no list)
        if len(name) == 4 and name.lower() == b"host":
            return b"%s://%s%s" % (
                _SCHEMES.get(scheme) or scheme.encode(),
                value.strip().lower(),
                target,
            )
    return (_SCHEMES.get(scheme) or scheme.encode()) + b"://" + target


# Request fields that change what the cache does (directives, ranges, a body, conditionals,
# a switch of protocols, credentials: RFC 9111 §3.5): a request with none of them is plain.
SPECIAL = frozenset(
    {
        b"authorization",
        b"cache-control",
        b"pragma",
        b"range",
        b"if-range",
        b"content-length",
        b"transfer-encoding",
        b"if-none-match",
        b"if-modified-since",
        b"if-match",
        b"upgrade",
    }
)


class RequestShape:
    """What a list of request field names tells the cache: its lower-cased names, whether
    none is in SPECIAL (a plain request), where its first Host is (-1: none)."""

    __slots__ = ("host", "names", "plain")

    def __init__(self, names: tuple[bytes, ...]) -> None:
        lowered = [name.lower() for name in names]
        self.names = frozenset(lowered)
        self.plain = self.names.isdisjoint(SPECIAL)
        self.host = lowered.index(b"host") if b"host" in self.names else -1


_SHAPES: Memo[tuple[bytes, ...], RequestShape] = Memo(256)
# (its lookup alone, for the hot path: the names' tuple, built in C, is the key)
known_shape = _SHAPES.get


def request_shape(headers: Headers) -> RequestShape:
    """The shape of a request with these fields, from the memo (its names as the key)."""
    names = tuple(map(_NAME, headers))
    shape = _SHAPES.get(names)
    if shape is None:
        shape = RequestShape(names)
        _SHAPES.put(names, shape)
    return shape


def vary_names(headers: Headers) -> tuple[bytes, ...]:
    """The lower-cased names a response's Vary lists, sorted, without duplicates."""
    return tuple(sorted(set(strip_names(get_values(headers, b"vary")))))


def secondary_key(names: tuple[bytes, ...], request_headers: Headers) -> SecondaryKey:
    """The request's normalised value of each field ``names`` lists (None when absent)."""
    out: list[tuple[bytes, bytes | None]] = []
    for name in names:
        values = get_values(request_headers, name)
        if not values:
            out.append((name, None))
            continue
        members = [m.strip(b" \t") for v in values for m in v.split(b",")]
        if name in _CASELESS:
            # Case, the order of the members and blanks around ";" and "=" carry no meaning
            # in these (preference is in the q parameters, RFC 9110 §12.4.2).
            members = sorted(_PARAM_BLANKS.sub(rb"\1", m.lower()) for m in members)
        out.append((name, b",".join(m for m in members if m)))
    return tuple(out)


def language_chosen(stored: Headers, request_headers: Headers) -> bool:
    """Would the request choose the stored response's language over every other one?

    RFC 9111 §4.1 lets a cache use a selecting field's own mechanism (q-values) to pick a
    stored response.  A response that varies on Accept-Language alone, in one language
    (its one Content-Language tag), answers a request whose Accept-Language gives that tag
    a weight above every other range (RFC 9110 §12.4.2, §12.5.4): the origin offers that
    language, and proactive negotiation picks it whatever else it offers.
    """
    languages = [m.strip() for v in get_values(stored, b"content-language") for m in v.split(b",")]
    if len(languages) != 1 or not languages[0]:
        return False
    tag = languages[0].lower()
    best = -1.0
    other = -1.0
    for value in get_values(request_headers, b"accept-language"):
        for member in value.split(b","):
            name, _, params = member.partition(b";")
            weight = _weight(params)
            if weight is None:
                return False  # a q the field does not allow: no guess
            if name.strip().lower() == tag:
                best = max(best, weight)
            elif name.strip():
                other = max(other, weight)
    return best > 0 and best > other


def _weight(params: bytes) -> float | None:
    name, _, value = params.strip().partition(b"=")
    if not name:
        return 1.0
    if name.strip().lower() != b"q" or not _QVALUE.fullmatch(value.strip()):
        return None
    return float(value)


def freshen(stored: Headers, fresh: Headers) -> tuple[tuple[bytes, bytes], ...]:
    """The stored header section updated from a 304 (or HEAD) response (RFC 9111 §3.2).

    Each field of the new response replaces the stored field of that name; stored fields it
    does not name are kept.  Fields the new response's Connection names are not taken.
    Which fields go is a matter of the two lists' names alone (without a Connection field):
    worked out once per pair of name lists (:func:`freshen_plan`), and then two picks by
    index, in C.
    """
    plan = freshen_plan(tuple(map(_NAME, stored)), tuple(map(_NAME, fresh)))
    if plan is not None:
        kept, taken, _ = plan
        return kept(stored) + taken(fresh)
    skip = _NOT_UPDATED | set(strip_names(get_values(fresh, b"connection")))
    incoming = [(n, v) for n, v in fresh if n.lower() not in skip]
    replaced = {n.lower() for n, _ in incoming}
    return tuple([(n, v) for n, v in stored if n.lower() not in replaced] + incoming)


def freshen_plan(stored: tuple[Any, ...], fresh: tuple[Any, ...]) -> Plan | None:
    """What :func:`freshen` keeps of a stored list with the names ``stored`` and takes of a
    new one with the names ``fresh`` (pickers by index, for the lists' fields or for their
    values alike), and the names of the result; None when the new list has a Connection
    field (whose names are not taken: a matter of its values) or a name that is not
    hashable.  From a memo of pairs of name lists."""
    names = (stored, fresh)
    try:
        plan = _FRESHENED.get(names)
    except TypeError:  # (a name that is not hashable)
        return None
    if plan is None and not _names_connection(fresh):
        plan = _freshening(stored, fresh)
        _FRESHENED.put(names, plan)
    return plan


# Some of a header section's fields (or of their values), picked by their indices (picker).
Pick = Callable[[Sequence[Any]], tuple[Any, ...]]
# (the stored fields kept, the new fields taken, the names of the two together)
Plan = tuple[Pick, Pick, tuple[Any, ...]]
_FRESHENED: Memo[tuple[tuple[Any, ...], tuple[Any, ...]], Plan] = Memo(256)


def _names_connection(names: tuple[Any, ...]) -> bool:
    return any(isinstance(name, bytes) and name.lower() == b"connection" for name in names)


def _freshening(stored: tuple[Any, ...], fresh: tuple[Any, ...]) -> Plan:
    """What :func:`freshen` keeps of the stored fields and takes of the new ones, by index,
    for lists with these names (the new one without a Connection field)."""
    taken = [i for i, name in enumerate(fresh) if name.lower() not in _NOT_UPDATED]
    replaced = {fresh[i].lower() for i in taken}
    kept = [i for i, name in enumerate(stored) if name.lower() not in replaced]
    names = tuple(stored[i] for i in kept) + tuple(fresh[i] for i in taken)
    return picker(kept), picker(taken), names


def picker(indices: list[int]) -> Pick:
    """The items at ``indices`` of a sequence, as a tuple."""
    if len(indices) > 1:
        return itemgetter(*indices)  # (of two or more indices, a tuple)
    if indices:
        at = indices[0]
        return lambda fields: (fields[at],)
    return _no_pick


def _no_pick(items: Sequence[Any]) -> tuple[Any, ...]:
    return ()


def validators_match(stored: Headers, fresh: Headers) -> bool:
    """RFC 9111 §4.3.4: does a 304 describe this stored response?

    A strong ETag in the 304 selects stored responses with the same one; without an ETag
    a Last-Modified must match when both have one.
    """
    new_tags = get_values(fresh, b"etag")
    old_tags = get_values(stored, b"etag")
    if new_tags:
        return bool(old_tags) and _opaque(old_tags[0]) == _opaque(new_tags[0])
    new_lm = get_values(fresh, b"last-modified")
    old_lm = get_values(stored, b"last-modified")
    if new_lm and old_lm:
        return parse_http_date(new_lm[0]) == parse_http_date(old_lm[0])
    return True


def _opaque(tag: bytes) -> bytes:
    tag = tag.strip()
    return tag[2:] if tag[:2] == b"W/" else tag


def invalidated(method: bytes, status: int, key: bytes, response_headers: Headers) -> list[bytes]:
    """The primary keys an unsafe request's response makes stale (RFC 9111 §4.4).

    Only a non-error response (2xx, 3xx) invalidates; Location and Content-Location count
    when they share the target's origin (a cache MUST NOT invalidate another origin's URIs
    on its word, §4.4).
    """
    if method in (b"GET", b"HEAD", b"OPTIONS", b"TRACE") or not 200 <= status < 400:
        return []
    origin_end = key.find(b"/", key.find(b"://") + 3)
    origin = key if origin_end < 0 else key[:origin_end]
    keys = [key]
    for name in (b"location", b"content-location"):
        for value in get_values(response_headers, name):
            uri = _resolve(origin, key, value.strip())
            if uri is not None and uri.startswith(origin + b"/") and uri not in keys:
                keys.append(uri)
    return keys


def _resolve(origin: bytes, key: bytes, reference: bytes) -> bytes | None:
    if b"://" in reference[:10]:
        scheme, _, rest = reference.partition(b"://")
        authority, slash, path = rest.partition(b"/")
        return scheme.lower() + b"://" + authority.lower() + slash + path
    if reference.startswith(b"//"):
        return None  # another authority, or the same one spelled oddly: not trusted
    if reference.startswith(b"/"):
        return origin + reference
    if not reference:
        return None
    base = key.partition(b"?")[0]
    return base[: base.rfind(b"/") + 1] + reference


def _weak_match(a: bytes, b: bytes) -> bool:
    return _opaque(a) == _opaque(b)


def not_modified(request_headers: Headers, stored: Headers) -> bool:
    """Does the stored response let the cache answer the client's conditional GET with 304?

    If-None-Match (weak comparison, RFC 9110 §13.1.2) decides when present; otherwise
    If-Modified-Since against the stored Last-Modified (§13.1.3).
    """
    inm = get_values(request_headers, b"if-none-match")
    if inm:
        tags = [t.strip() for v in inm for t in v.split(b",") if t.strip()]
        if b"*" in tags:
            return True
        etags = get_values(stored, b"etag")
        return bool(etags) and any(_weak_match(etags[0], t) for t in tags)
    ims = get_values(request_headers, b"if-modified-since")
    if ims:
        since = parse_http_date(ims[0])
        # RFC 9110 §13.1.3: a cache may compare with the stored Date when there is no
        # Last-Modified.
        modified = get_values(stored, b"last-modified") or get_values(stored, b"date")
        when = parse_http_date(modified[0]) if modified else None
        return since is not None and when is not None and when <= since
    return False


def byte_range(values: list[bytes], length: int) -> tuple[int, int] | bool | None:
    """The one byte range a Range field asks of a ``length``-byte representation.

    RFC 9110 §14.2: ``(first, last)`` inclusive; False when unsatisfiable (416); None when
    the field is to be ignored and the whole response sent (another unit, a malformed
    spec, or several ranges, which this cache does not assemble).
    """
    if len(values) != 1:
        return None
    ranges = parse_byte_ranges(values[0], length, 1)  # more than one spec: ignored
    if ranges is None:
        return None
    return ranges[0] if ranges else False


def cache_status(*params: bytes) -> tuple[bytes, bytes]:
    """The Cache-Status field naming this cache, ``thor`` (RFC 9211 §2)."""
    return (b"Cache-Status", b"; ".join((b"thor", *params)))
