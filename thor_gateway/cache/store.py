"""Where responses are kept: the :class:`Store` interface and the in-memory store.

A store maps a primary key (the target URI) to its variants, each a stored response with
its secondary key (RFC 9111 §4.1).  The cache handler asks ``variants(key)`` and picks the
one whose secondary key matches; it ``put``s a whole response once its body is complete,
and ``remove``s a primary key (all its variants) on invalidation or purge.

A store may take a body as it arrives instead of whole: ``spool(key)`` gives a
:class:`Spool` the body's chunks are written to (the disk store's is a temporary file), and
``put(entry, spool)`` then stores the entry with that body.  A store that keeps bodies in
memory answers ``spool`` with None and gets the body whole in ``put``.  An entry whose body
stayed in a file has ``file`` set (a :class:`BodyFile`) and an empty ``body``; the handler
streams it from the file.

:class:`MemoryStore` keeps a byte budget: each entry counts its body and header bytes, and
the least recently used URLs (with all their variants) go when a new entry would overflow it
(LRU, by ``OrderedDict.move_to_end`` on every lookup).  Another store (on disk, shared by
workers, or across machines) implements the same four methods.

An entry keeps its fields' values alone, in a tuple: their names are its head's
:class:`~thor_gateway.cache.heads.Shape`'s, one tuple for every response with those names
(``Entry.fields()`` pairs them again, when a rare path wants the pairs).  What a stored
response takes is then its values, not its names and a tuple per field as well: a 1 KiB
response of nine fields (nginx's) takes 2.4 KB in all instead of 3.3 KB (tracemalloc).  A
miss writes that memory for the first time (the store grows, or reuses what an evicted
entry left cold), and on a real CPU it costs more than the instructions that write it
(docs/cache-cost.md: an eighth round).

A stored entry holds no list: its values, served fields, length and validators are tuples
of bytes (or of bytes pairs; a body that came in pieces a tuple of them), and the store
maps a URL to its one entry (a list only for a URL with several variants).  CPython's
cyclic collector untracks a tuple of bytes once it has looked at it, and never scans it
again, so what it scans of a full store is one object per stored response instead of four
to six.  A full collection stops the loop for as long as it scans: a full store of the
default 64 MiB (42,000 responses of 1 KiB, each served once) is 59,000 tracked objects and
15 ms, against 269,000 and 86 ms with lists (``benchmarks/cache_collector.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from thor_gateway.cache.heads import shape_of
from thor_gateway.cache.keys import SecondaryKey
from thor_gateway.cache.rules import (
    DATES,
    Fields,
    current_age,
    delta_seconds,
    freshness_lifetime,
    parse_http_date,
    response_directives,
)

if TYPE_CHECKING:
    from thor_gateway.cache.heads import Head, Shape

__all__ = ["BodyFile", "Entry", "MemoryStore", "Spool", "Store", "Stored"]

Headers = Sequence[tuple[bytes, bytes]]
# What an entry keeps (module docstring: a tuple, which the collector does not scan).
Stored = tuple[tuple[bytes, bytes], ...]
_NEVER = float("-inf")
_new = object.__new__
_VALUE = itemgetter(1)
_DATES = DATES


@dataclass(slots=True, frozen=True)
class BodyFile:
    """Where a stored body that is not held in memory is: bytes 0 to ``length`` of the file
    at ``path``, as long as that file is the one with ``signature`` (inode, size, mtime)."""

    path: str
    length: int
    signature: tuple[int, int, int] = (0, 0, 0)


class Spool(Protocol):
    """Where a body goes as it arrives, before its entry is stored (``Store.spool``)."""

    def write(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False if it could not (then nothing of this body is stored)."""

    def discard(self) -> None:
        """Forget the body (the response is not stored after all)."""


@dataclass(slots=True)
class Entry:
    """One stored response and what RFC 9111 needs to know about it."""

    key: bytes  # the primary key
    vary: tuple[bytes, ...]  # the names the response's Vary lists
    secondary: SecondaryKey  # the request's values of those names
    status: int
    phrase: bytes
    # Its fields: kept as ``values`` and its ``shape``'s names (``fields()`` pairs them).
    headers: InitVar[Headers]
    body: bytes
    request_time: float  # when the request that got it was sent (§4.2.3)
    response_time: float  # when its head arrived
    file: BodyFile | None = None  # the body is in this file, not in ``body``
    # Or in these chunks, as it came (``fetched``): joined at its first use (``whole``), so
    # that a response stored and never served is not copied.
    pieces: tuple[bytes, ...] | None = None
    # What the caller already worked out from ``headers`` (a Fetch has, when it decided to
    # store): not done twice.
    indexed: InitVar[Fields | None] = None
    directives: InitVar[dict[bytes, bytes | None] | None] = None
    # Or its head's analysis, from the memo of head shapes (heads.py), and its header
    # bytes (-1: not counted yet).
    head: InitVar[Head | None] = None
    header_bytes: InitVar[int] = -1
    size: int = field(init=False)  # bytes held in memory
    body_size: int = field(init=False)  # bytes of the body (in ``body`` or in ``file``)
    # Worked out once, so that a hit parses nothing of the stored header section:
    res_cc: dict[bytes, bytes | None] = field(init=False)  # its directives
    lifetime: float = field(init=False)  # its freshness lifetime (RFC 9111 §4.2.1)
    initial_age: float = field(init=False)  # its age when received (§4.2.3)
    # Its fields' values, in order: their names are its shape's (the module docstring says
    # why).
    values: tuple[bytes, ...] = field(init=False, repr=False)
    # Its field names, and where the fields the cache reads are among them (heads.py): one
    # object for every response with these names.  serving() and conditions() read the
    # values by its indices.
    shape: Shape = field(init=False, repr=False, compare=False)
    # The fields it is served with, Age and length aside: worked out at its first use (a
    # response stored and never served costs no pass over its fields), by serving().
    served: Stored | None = field(init=False, default=None)
    length: Stored = field(init=False, repr=False)  # its Content-Length field (none for a 204)

    # If-None-Match and If-Modified-Since from its validators, to validate it (§4.3.1):
    # worked out at its first validation (conditions()), None until then.
    validators: Stored | None = field(init=False, default=None, repr=False)
    # Until when it is fresh for a request without directives (§4.2: lifetime > age), and
    # may be served without validation (no no-cache): a hit compares one number.
    fresh_until: float = field(init=False)
    # After when a request without directives must validate it (§4.3): stale, and not
    # within a stale-while-revalidate window (RFC 5861 §3); -inf with no-cache.  Before
    # then, reuse() says what to do.
    serve_until: float = field(init=False)

    def __post_init__(
        self,
        headers: Headers,
        indexed: Fields | None,
        directives: dict[bytes, bytes | None] | None,
        head: Head | None,
        header_bytes: int,
    ) -> None:
        headers = tuple(headers)
        self.values = tuple(map(_VALUE, headers))
        self.body_size = body_size = len(self.body) if self.file is None else self.file.length
        if header_bytes < 0:  # (one join in C: no Python frame per field)
            header_bytes = len(b"".join(chain.from_iterable(headers)))
        self.size = len(self.body) + header_bytes + 4 * len(headers) + 256
        # RFC 9110 §8.6: a 204 has no Content-Length
        self.length = () if self.status == 204 else ((b"Content-Length", b"%d" % body_size),)
        if head is not None:
            directives = head.res_cc
            self.shape = head.shape
        else:
            self.shape = shape_of(headers)
        if indexed is None:
            indexed = Fields(headers)
        self.res_cc = res_cc = response_directives(indexed) if directives is None else directives
        self.lifetime = freshness_lifetime(self.status, indexed, self.response_time, res_cc)
        received = self.response_time
        by_name = indexed.by_name
        if b"age" in by_name:
            self.initial_age = current_age(indexed, self.request_time, received, received)
        else:  # current_age() without an Age field: the apparent age or the response delay
            dates = by_name.get(b"date")
            date = parse_http_date(dates[0]) if dates else None
            apparent = 0.0 if date is None else received - date
            delay = received - self.request_time
            self.initial_age = max(apparent, delay, 0.0)
        self._until(res_cc)

    @classmethod
    def fetched(
        cls,
        key: bytes,
        vary: tuple[bytes, ...],
        secondary: SecondaryKey,
        status: int,
        phrase: bytes,
        values: tuple[bytes, ...],
        chunks: list[bytes],
        request_time: float,
        response_time: float,
        head: Head,
        head_size: int = 0,
    ) -> Entry:
        """A response fetched whole into memory (its body in the ``chunks`` it came in),
        from its head's analysis (heads.py): what ``__post_init__`` works out, read by
        index when a directive gives the lifetime and there is no Age field (the fields'
        values that vary are read, nothing is parsed); ``length`` is left to
        ``serving()``, at its first use.  ``values``: its fields' values (a tuple, as the
        Fetch made it), named by the head's shape, kept as they are.  ``head_size``: the
        bytes its head came in, if known (then its fields need not be counted)."""
        shape = head.shape
        if not head.direct:
            return cls(
                key, vary, secondary, status, phrase, shape.fields(values), b"".join(chunks),
                request_time, response_time, head=head,
            )  # fmt: skip
        self = _new(cls)
        self.shape = shape
        self.key = key
        self.vary = vary
        self.secondary = secondary
        self.status = status
        self.phrase = phrase
        self.values = values
        self.request_time = request_time
        self.response_time = response_time
        self.file = None
        self.served = None
        if len(chunks) == 1:  # (most bodies: one read)
            self.body = body = chunks[0]
            self.pieces = None
            self.body_size = size = len(body)
        else:
            self.body = b""
            self.pieces = tuple(chunks) or None
            self.body_size = size = sum(map(len, chunks))
        if head_size > 0:  # (as it came: its fields, 4 bytes each around them, a status line)
            self.size = size + head_size + 256
        else:  # the names' bytes (counted once per shape) and the values', joined in C
            self.size = size + shape.name_bytes + len(b"".join(values)) + shape.more
        self.res_cc = head.res_cc
        lifetime: float = head.lifetime  # type: ignore[assignment]  # (direct: a float)
        self.lifetime = lifetime
        # current_age() without an Age field: the apparent age or the response delay
        initial_age = response_time - request_time
        at = shape.date
        if at >= 0:
            value = values[at]
            date: Any = _DATES.get(value)
            if date is None:  # (not seen lately, or not a date: parse_http_date tells)
                date = parse_http_date(value)
            if date is not None and response_time - date > initial_age:
                initial_age = response_time - date
        if initial_age < 0:
            initial_age = 0.0
        self.initial_age = initial_age
        self.validators = None
        if head.no_cache:
            self.fresh_until = self.serve_until = _NEVER
        else:  # as _until()
            fresh_for = lifetime - initial_age
            stale_at = response_time + fresh_for
            self.fresh_until = stale_at if fresh_for > 0 else _NEVER
            window = head.window
            self.serve_until = stale_at if window is None else stale_at + window
        return self

    def _until(self, res_cc: Mapping[bytes, bytes | None]) -> None:
        """``fresh_until`` and ``serve_until``, as reuse() decides for a request without
        directives."""
        fresh_for = self.lifetime - self.initial_age
        if b"no-cache" in res_cc:
            self.fresh_until = self.serve_until = float("-inf")
            return
        stale_at = self.response_time + fresh_for
        self.fresh_until = stale_at if fresh_for > 0 else float("-inf")
        window = delta_seconds(res_cc.get(b"stale-while-revalidate"))
        if window is None or (
            b"must-revalidate" in res_cc or b"proxy-revalidate" in res_cc or b"s-maxage" in res_cc
        ):
            self.serve_until = stale_at
        else:
            self.serve_until = stale_at + window

    def fields(self) -> Stored:
        """Its header fields: (name, value) pairs, made now."""
        return self.shape.fields(self.values)

    def serving(self) -> Stored:
        """``served`` (and ``length``), worked out now if they were not yet."""
        served = self.served
        if served is None:
            served = self.served = self.shape.served(self.values)
            # RFC 9110 §8.6: a 204 has no Content-Length
            self.length = (
                () if self.status == 204 else ((b"Content-Length", b"%d" % self.body_size),)
            )
        return served

    def conditions(self) -> Stored:
        """``validators``: If-None-Match and If-Modified-Since from its ETag and
        Last-Modified (§4.3.1), worked out now if they were not yet (read by the indices of
        its head's shape)."""
        validators = self.validators
        if validators is None:
            validators = self.validators = self.shape.conditions(self.values)
        return validators

    def whole(self) -> bytes:
        """Its body in memory, the chunks it came in joined now if they were not yet."""
        pieces = self.pieces
        if pieces is not None:
            self.body = b"".join(pieces)
            self.pieces = None
        return self.body

    def age(self, now: float) -> float:
        """Its current age (§4.2.3): the age it arrived with and the time it has been here."""
        resident = now - self.response_time
        return self.initial_age + resident if resident > 0 else self.initial_age


class Store(Protocol):
    """The storage a :class:`~thor_gateway.cache.handler.CacheHandler` uses."""

    def variants(self, key: bytes) -> Sequence[Entry]:
        """The stored responses for ``key`` (empty when none); marks them recently used.
        The sequence may be the store's own: the caller reads it and does not change it."""

    def put(self, entry: Entry, spool: Spool | None = None) -> bool:
        """Store ``entry``, replacing the variant with its secondary key; False if too big.

        With ``spool`` (from :meth:`spool`), its body is what was written there, and the
        spool is used up whatever the answer."""

    def spool(self, key: bytes) -> Spool | None:
        """Somewhere to write the body of a response for ``key`` as it arrives; None when
        the store takes bodies whole (in ``put``)."""

    def remove(self, key: bytes) -> int:
        """Drop every variant of ``key``; how many there were."""

    def purge(self, prefix: bytes) -> int:
        """Drop every entry whose key starts with ``prefix``; how many."""


class MemoryStore:
    """Entries in memory within ``max_bytes``, the least recently used URLs evicted first."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        # primary key -> its entry, or a list of its variants when it has several (few
        # URLs: a response with Vary), URLs in use order (oldest first).  Keyed by the URL
        # alone: a lookup or a store hashes one bytes object (its hash kept in it) and makes
        # no key tuple, and the common replacement of a URL's only entry is one store.
        self._urls: OrderedDict[bytes, Entry | list[Entry]] = OrderedDict()
        # Its methods, bound once: CPython 3.11 does not specialise a method lookup on an
        # OrderedDict (it has an instance dict to look in first), and the lookup and the
        # store use them on every request.  (_urls is never replaced.)
        self._get = self._urls.get
        self._pop = self._urls.pop
        self._move_to_end = self._urls.move_to_end

    def __len__(self) -> int:
        return sum(len(_variants(held)) for held in self._urls.values())

    def __iter__(self) -> Iterator[Entry]:
        return iter([entry for held in self._urls.values() for entry in _variants(held)])

    def variants(self, key: bytes) -> Sequence[Entry]:
        """``key``'s variants: its one entry in a tuple made now, or the store's own list (to
        read, not to change)."""
        held: Any = self._get(key)  # (Any: a class test, which mypy does not narrow by)
        if held is None:
            return ()
        self._move_to_end(key)
        # (_variants, inline and by its class: on every hit, where a call and an
        # isinstance that fails cost more.)
        return held if held.__class__ is list else (held,)

    def spool(self, key: bytes) -> None:
        return None  # bodies come whole, in put

    def put(self, entry: Entry, spool: Spool | None = None) -> bool:
        size = entry.size  # (then what the store grows by)
        if size > self.max_bytes:
            return False
        urls = self._urls
        key = entry.key
        # (Taken out and put back: the URL becomes the most recently used.)
        held: Any = self._pop(key, None)  # (as in variants)
        if held is None:
            urls[key] = entry
        elif held.__class__ is list:
            self._vary(held, entry)
            urls[key] = held
        elif held.secondary == entry.secondary:  # (most URLs: their one entry, replaced)
            size -= held.size
            urls[key] = entry
        else:
            urls[key] = [held, entry]
        total = self.bytes = self.bytes + size
        if total > self.max_bytes:
            self._evict(entry)
        return True

    def _vary(self, variants: list[Entry], entry: Entry) -> None:
        """Put ``entry`` in place of the variant with its secondary key, or add it."""
        for i, old in enumerate(variants):
            if old.secondary == entry.secondary:
                self.bytes -= old.size
                variants[i] = entry
                return
        variants.append(entry)

    def _evict(self, keep: Entry) -> None:
        """Drop the least recently used URLs (all their variants) until within budget;
        when ``keep``'s URL is the last one left, its other variants."""
        urls = self._urls
        while self.bytes > self.max_bytes:
            key, held = urls.popitem(last=False)
            victims = _variants(held)
            if key == keep.key:  # (then keep alone is within budget: put checked)
                urls[key] = keep
                victims = [v for v in victims if v is not keep]
            for victim in victims:
                self.bytes -= victim.size
                self.evictions += 1

    def remove(self, key: bytes) -> int:
        held = self._urls.pop(key, None)
        if held is None:
            return 0
        variants = _variants(held)
        for entry in variants:
            self.bytes -= entry.size
        return len(variants)

    def purge(self, prefix: bytes) -> int:
        keys = [k for k in self._urls if k.startswith(prefix)]
        return sum(self.remove(k) for k in keys)


def _variants(held: Entry | list[Entry]) -> Sequence[Entry]:
    """What the memory store holds for a URL, as its variants: its one entry, or its list."""
    return held if isinstance(held, list) else (held,)
