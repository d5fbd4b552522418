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

A shape also keeps its names for the stored responses: an entry (store.py) keeps its
fields' values alone, and what it is served with, validated by and freshened into (a 304,
:func:`freshened`) is worked out from its values by the shape's indices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from thor.memo import Memo
from thor_gateway.cache.keys import (
    NOT_SERVED,
    cache_status,
    freshen,
    freshen_plan,
    picker,
    vary_names,
)
from thor_gateway.cache.rules import (
    SURROGATE_MAX_AGE,
    Fields,
    delta_seconds,
    response_directives,
    storable,
)

__all__ = [
    "Head",
    "Mark",
    "Shape",
    "Values",
    "analyse",
    "analysed",
    "freshened",
    "pass_mark",
    "shape_of",
]

Headers = Sequence[tuple[bytes, bytes]]
Stored = tuple[tuple[bytes, bytes], ...]  # (as store.py keeps fields)
Mark = tuple[bytes, ...]  # the Cache-Control values of a passed URL (passing.py)
_NAME = itemgetter(0)
_VALUE = itemgetter(1)
Values = tuple[bytes, ...]  # a header list's values, in order (named by a Shape)
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
        "names",
        "policy",
        "served",
    )

    def __init__(self, names: tuple[Any, ...]) -> None:
        # The names, kept once for every stored response with them: an entry keeps its
        # values alone (Entry.values), and its fields are these names with those values.
        self.names = names
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
        # The policy fields' values of a list with these names, in C (itemgetter of one
        # index gives the value itself, of several a tuple of them: with the shape, which
        # stands for the names, either is a memo key).
        self.policy: Callable[[Sequence[bytes]], Any] = itemgetter(*where) if where else _NOTHING
        # If-None-Match and If-Modified-Since from a stored response's values of its ETag
        # and Last-Modified, to validate it (RFC 9111 §4.3.1; Entry.conditions)
        self.conditions = _conditions(self.etag, self.last_modified)
        # The fields a stored response is served with (Entry.serving), from its values: all
        # but those the cache writes itself, picked by index and named.
        self.served = _served(
            names,
            [i for i, name in enumerate(names) if not isinstance(name, bytes)
             or name.lower() not in NOT_SERVED],
        )  # fmt: skip

    def fields(self, values: Sequence[bytes]) -> Stored:
        """The (name, value) pairs of a header list with these names and ``values``."""
        # (As many values as names, by construction.  No strict=True: a keyword costs zip
        # its fast call, a dict of keywords made and parsed each time.)
        return tuple(zip(self.names, values))  # noqa: B905


# What a stored response is served with, or validated by, worked out from its values.
FromValues = Callable[[Sequence[bytes]], Stored]


def _served(names: tuple[Any, ...], indices: list[int]) -> FromValues:
    """The fields at ``indices`` of a header list with these names, from its values."""
    kept = tuple(names[i] for i in indices)
    pick = picker(indices)  # (of values: a tuple of them)
    return lambda values: tuple(zip(kept, pick(values)))  # noqa: B905


def _conditions(etag: int, modified: int) -> FromValues:
    """The conditional fields that validate a response with its ETag's value at index
    ``etag`` and its Last-Modified's at ``modified`` (-1: none)."""
    if etag >= 0 and modified >= 0:
        return lambda values: (
            (b"If-None-Match", values[etag]),
            (b"If-Modified-Since", values[modified]),
        )
    if etag >= 0:
        return lambda values: ((b"If-None-Match", values[etag]),)
    if modified >= 0:
        return lambda values: ((b"If-Modified-Since", values[modified]),)
    return _none


def _none(values: Sequence[bytes]) -> Stored:
    return ()


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
    return analysed(code, tuple(map(_NAME, fields)), tuple(map(_VALUE, fields)))


def analysed(code: int, names: tuple[Any, ...], values: Sequence[bytes]) -> Head:
    """The analysis of a response head whose fields have these ``names`` and ``values``
    (two tuples, in order), from the memos; its shape is ``head.shape``."""
    global _last_shape, _last_head
    last_names, shape = _last_shape
    if names != last_names:
        shape = _shape(names)
        _last_shape = (names, shape)
    policy = shape.policy(values)
    last_code, last_of, last_policy, head = _last_head
    if last_of is shape and last_code == code and last_policy == policy:
        return head
    key = (code, shape, policy)  # (the shape stands for its names)
    try:
        found = _HEADS.get(key)
    except TypeError:  # values as bytearrays: analysed, not remembered
        return Head(code, shape.fields(values), shape)
    if found is None:
        found = Head(code, shape.fields(values), shape)
        _HEADS.put(key, found)
    _last_head = (code, shape, policy, found)
    return found


def freshened(
    shape: Shape, values: Sequence[bytes], fresh: Headers
) -> tuple[tuple[Any, ...], Values]:
    """The fields of a stored response (``shape``'s names, ``values``) updated from a 304's
    ``fresh`` ones (RFC 9111 §3.2, as keys.freshen does): their names and their values.
    The stored response's fields are not made: its values are picked."""
    plan = freshen_plan(shape.names, tuple(map(_NAME, fresh)))
    if plan is None:
        merged = freshen(shape.fields(values), fresh)
        return tuple(map(_NAME, merged)), tuple(map(_VALUE, merged))
    kept, taken, names = plan
    return names, kept(values) + taken(tuple(map(_VALUE, fresh)))
