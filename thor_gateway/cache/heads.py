"""A response head's analysis, done once per head shape and not once per response.

Every response a storing miss fetches is looked at for what RFC 9111 decides from its head:
may it be stored (§3), its directives (§5.2.2), its Vary names (§4.1), its freshness
lifetime when a directive gives it (§4.2.1), the mark that passes its URL (passing.py).
Responses of one origin repeat a few head shapes: the same field names in the same order,
and the same Cache-Control, Surrogate-Control, Vary and Expires values.  So the analysis is
kept in two memos (``thor.memo.Memo``, bounded):

- by the tuple of field names (built in C: ``map(itemgetter(0), ...)``): a :class:`Shape`,
  where each field the cache reads sits in the list, so that reading the Date, Age, ETag,
  Last-Modified or Content-Length of a response is one index, with no pass over its fields;
- by (status, names, the policy fields' pairs): a :class:`Head`, the decisions themselves.

Before either memo, the last shape and the last analysis are compared with the head (no
hashing of freshly parsed names and values): a route's responses mostly repeat one head.

What changes per response (Date, Age, ETag, Last-Modified, Content-Length) is read through
the shape's indices; a lifetime that depends on dates (Expires, the heuristic of §4.2.2) is
left to :func:`~thor_gateway.cache.rules.freshness_lifetime` per response.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from thor.memo import Memo
from thor_gateway.cache.keys import NOT_SERVED, Pick, cache_status, picker, vary_names
from thor_gateway.cache.rules import (
    SURROGATE_MAX_AGE,
    Fields,
    delta_seconds,
    response_directives,
    storable,
)

__all__ = ["Head", "Mark", "Shape", "analyse", "pass_mark", "shape_of"]

Headers = Sequence[tuple[bytes, bytes]]
Mark = tuple[bytes, ...]  # the Cache-Control values of a passed URL (passing.py)
_NAME = itemgetter(0)
_CC = b"cache-control"
_SC = b"surrogate-control"
# The fields whose values decide storing and the directives (the policy of a head).
_POLICY = (b"cache-control", b"surrogate-control", b"vary", b"expires")
_NOTHING: Callable[[Any], Any] = lambda fields: ()  # noqa: E731  (a head with none of them)
_NO_REQUEST: Headers = []
_NO_DIRECTIVES: dict[bytes, bytes | None] = {}


def pass_mark(indexed: Fields, res_cc: Any) -> Mark | None:
    """The Cache-Control values that alone make a response unstorable, or None."""
    if (
        (b"no-store" in res_cc or b"private" in res_cc)
        and b"must-understand" not in res_cc  # (it would make no-store depend on the status)
        and _SC not in indexed.by_name
    ):
        return tuple(indexed.by_name.get(_CC, ()))
    return None


class Shape:
    """Where the fields the cache reads are in a header list with these names (-1: none)."""

    __slots__ = (
        "age",
        "conditions",
        "content_length",
        "date",
        "etag",
        "last_modified",
        "more",
        "name_bytes",
        "policy",
        "served",
    )

    def __init__(self, names: tuple[Any, ...]) -> None:
        first: dict[bytes, int] = {}
        where: list[int] = []
        for i, name in enumerate(names):
            lname = name.lower() if isinstance(name, bytes) else b""
            first.setdefault(lname, i)
            if lname in _POLICY:
                where.append(i)
        self.date = first.get(b"date", -1)
        self.age = first.get(b"age", -1)
        self.etag = first.get(b"etag", -1)
        self.last_modified = first.get(b"last-modified", -1)
        self.content_length = first.get(b"content-length", -1)
        # A stored entry's size counts its names' bytes (these), its values' bytes, and 4
        # per field and 256 for the entry itself (as Entry.__post_init__ does).
        self.name_bytes = sum(len(name) for name in names if isinstance(name, bytes))
        self.more = 4 * len(names) + 256
        # The policy fields' (name, value) pairs of a list, in C (itemgetter of one index
        # gives the pair itself, of several a tuple of pairs: either is a memo key).
        self.policy: Callable[[Headers], Any] = itemgetter(*where) if where else _NOTHING
        # If-None-Match and If-Modified-Since from its ETag and Last-Modified, to validate a
        # stored response (RFC 9111 §4.3.1; Entry.conditions)
        self.conditions = _conditions(self.etag, self.last_modified)
        # The fields a stored response is served with (Entry.serving): all but those the
        # cache writes itself, picked by index.
        self.served = picker(
            [i for i, name in enumerate(names) if not isinstance(name, bytes)
             or name.lower() not in NOT_SERVED]
        )  # fmt: skip


def _conditions(etag: int, modified: int) -> Pick:
    """The conditional fields that validate a response with its ETag at index ``etag`` and
    its Last-Modified at ``modified`` (-1: none)."""
    if etag >= 0 and modified >= 0:
        return lambda fields: (
            (b"If-None-Match", fields[etag][1]),
            (b"If-Modified-Since", fields[modified][1]),
        )
    if etag >= 0:
        return lambda fields: ((b"If-None-Match", fields[etag][1]),)
    if modified >= 0:
        return lambda fields: ((b"If-Modified-Since", fields[modified][1]),)
    return picker([])


class Head:
    """What RFC 9111 decides from a head's policy fields (status, directives, Vary)."""

    __slots__ = (
        "auth_ok",
        "cache_status",
        "direct",
        "keep",
        "lifetime",
        "mark",
        "no_cache",
        "res_cc",
        "shape",
        "vary",
        "window",
    )

    def __init__(self, code: int, fields: Headers, shape: Shape) -> None:
        indexed = Fields(fields)
        self.shape = shape
        self.res_cc = res_cc = response_directives(indexed)
        # Stored, whole, for a GET without directives, range or Authorization (§3)?  (A part
        # is kept only for a request with a Range: fetch.py.)
        self.keep = code != 206 and storable(
            b"GET", code, _NO_REQUEST, indexed, _NO_DIRECTIVES, res_cc
        )
        # §3.5: these let a shared cache store a response to an authorised request too.
        self.auth_ok = b"must-revalidate" in res_cc or b"public" in res_cc or b"s-maxage" in res_cc
        self.vary = vary_names(fields) if b"vary" in indexed.by_name else ()
        self.mark: Mark | None = pass_mark(indexed, res_cc)
        self.lifetime = _directive_lifetime(res_cc)
        # Whether a stored response's lifetime and initial age follow from this analysis
        # and its Date alone (Entry.fetched): a directive gives the lifetime, and it has
        # no Age field.
        self.direct = self.lifetime is not None and shape.age < 0
        # For Entry.serve_until: no-cache (always validated, §5.2.2.4), and the
        # stale-while-revalidate window unless a directive forbids serving stale (§4.2.4).
        self.no_cache = b"no-cache" in res_cc
        window = delta_seconds(res_cc.get(b"stale-while-revalidate"))
        if b"must-revalidate" in res_cc or b"proxy-revalidate" in res_cc or b"s-maxage" in res_cc:
            window = None
        self.window = window
        # The Cache-Status field of a fetch that got it (RFC 9211 §2), by [stored][validating]
        status = b"fwd-status=%d" % code
        self.cache_status = tuple(
            (cache_status(b"fwd=miss", status, *kept), cache_status(b"fwd=stale", status, *kept))
            for kept in ((), (b"stored",))
        )


def _directive_lifetime(res_cc: Mapping[bytes, bytes | None]) -> float | None:
    """§4.2.1's lifetime when a directive gives it (no date needed), else None."""
    for name in (SURROGATE_MAX_AGE, b"s-maxage", b"max-age"):
        if name in res_cc:
            value = delta_seconds(res_cc[name])
            return 0.0 if value is None else float(value)
    return None


_SHAPES: Memo[tuple[Any, ...], Shape] = Memo(256)
_HEADS: Memo[tuple[Any, ...], Head] = Memo(256)
# The last head shape and analysis found, tried before the memos: the responses of one
# origin repeat one head, and comparing its names (or policy fields) with the last ones
# hashes none of the freshly parsed bytes that a memo lookup would hash.  Each is one
# tuple, replaced whole, so that another thread never reads half of one.  (They start as
# the true analysis of a head with no fields.)
_NO_FIELDS = Shape(())
_last_shape: tuple[tuple[Any, ...], Shape] = ((), _NO_FIELDS)
_last_head: tuple[int, Shape, Any, Head] = (0, _NO_FIELDS, (), Head(0, [], _NO_FIELDS))


def shape_of(fields: Headers) -> Shape:
    """Where the fields the cache reads are in ``fields`` (bytes pairs), from the memo."""
    return _shape(tuple(map(_NAME, fields)))


def _shape(names: tuple[Any, ...]) -> Shape:
    try:
        known = _SHAPES.get(names)
    except TypeError:  # (a name that is not hashable: worked out, not remembered)
        return Shape(names)
    if known is None:
        known = Shape(names)
        _SHAPES.put(names, known)
    return known


def analyse(code: int, fields: Headers) -> Head:
    """The analysis of a response head with these fields (bytes pairs), from the memos."""
    global _last_shape, _last_head
    names = tuple(map(_NAME, fields))
    last_names, shape = _last_shape
    if names != last_names:
        shape = _shape(names)
        _last_shape = (names, shape)
    policy = shape.policy(fields)
    last_code, last_of, last_policy, head = _last_head
    if last_of is shape and last_code == code and last_policy == policy:
        return head
    key = (code, shape, policy)  # (the shape stands for its names)
    try:
        found = _HEADS.get(key)
    except TypeError:  # pairs as lists, values as bytearrays: analysed, not remembered
        return Head(code, fields, shape)
    if found is None:
        found = Head(code, fields, shape)
        _HEADS.put(key, found)
    _last_head = (code, shape, policy, found)
    return found
