"""The fetch: where the response to a cache's request goes as the inner handler answers.

A :class:`Fetch` is made for each request the cache hands to the wrapped handler (a miss, a
validation, a background refresh).  The response's calls come to it as to an exchange
(``response_start``, ``response_body``, ``response_done``, ``abort``): from the proxy
itself, which relays its upstream's response straight into it
(``ProxyHandler.cache_fetch``), or, for any other handler, through the exchange that
stands in for the client (:mod:`thor_gateway.cache.inner`).  The response goes to the
client as it arrives, and a copy is kept until it is whole and stored (or grows beyond
``max_object_size``, and streams through): in memory, or, when the store spools (the disk
store), written to the store's temporary file as each chunk arrives, so that a body is
never held whole.  The client's pauses go to the request handed on (its :class:`Relay`);
a client that leaves cancels it unless the response is being stored or others wait for it.
A 304 to a validation freshens the stored response (RFC 9111 §3.2, §4.3.4) and the stored
response is served instead; so is a stale one when the answer is an error and
``stale-if-error`` allows it (RFC 5861 §4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from thor.http.exchange import Exchange
from thor.http.headers import get_values
from thor_gateway.cache.answer import serve
from thor_gateway.cache.heads import Head, analysed, freshened
from thor_gateway.cache.keys import (
    NOT_SERVED,
    byte_range,
    not_modified,
    secondary_key,
)
from thor_gateway.cache.rules import (
    Fields,
    current_age,
    freshness_lifetime,
    response_directives,
    stale_if_error,
    storable,
)
from thor_gateway.cache.store import BodyFile, Entry, Spool
from thor_gateway.routing.request import Request

if TYPE_CHECKING:
    from thor_gateway.cache.handler import CacheHandler

__all__ = [
    "PART",
    "PLAIN",
    "Asked",
    "Fetch",
    "Relay",
    "StandIn",
    "Watching",
    "as_bytes",
    "content_range",
    "part_range",
]

Headers = list[tuple[bytes, bytes]]
AnyFields = Sequence[tuple[bytes, bytes]]  # a list of pairs, or a stored entry's tuple
_GET = b"GET"
_NAME = itemgetter(0)
_VALUE = itemgetter(1)
_HEAD = b"HEAD"
# Stored parts (single-range 206 responses) live under their URL's key plus this (a
# request-target has no space), apart from the complete responses.
PART = b" part"
_VALIDATED = b"fwd=stale; fwd-status=304"
_NO_TRAILERS: Headers = []
# (A classmethod read from its class is not specialised by CPython 3.11: looked up, and a
# bound method made, on every storing fetch.)
_fetched = Entry.fetched
_NO_DIRECTIVES: Mapping[bytes, bytes | None] = {}


class Relay(Protocol):
    """The request a fetch handed to the inner handler, as the fetch steers it."""

    # The HTTP client exchange the response comes on (a proxy's), or None: its
    # ``res_head_size`` counts a stored response's memory.  (Read as an attribute: a
    # property costs a call on every storing miss.)
    cx: Any

    def client_paused(self, paused: bool) -> None:
        """The client stopped (or went on) reading: so does the relay, from upstream."""

    def cancel(self) -> None:
        """Nobody wants the response any more."""


class StandIn:
    """An exchange an inner handler answers on in place of the client's (``_exchange``):
    what it does not define is the client exchange's.  ``client_address`` and ``scheme``,
    read on every forwarded request, are properties: a name found only by ``__getattr__``
    is missed first, at the cost of an exception."""

    __slots__ = ()
    _exchange: Exchange

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    @property
    def client_address(self) -> Any:
        return self._exchange.client_address

    @property
    def scheme(self) -> Any:
        return self._exchange.scheme


class Watching(StandIn):
    """The client's own exchange, with the response's calls a subclass defines watched (a
    passed miss, an unsafe request): what a proxy reads of it on every request is the
    client's, bound here once, not found through ``__getattr__`` (an AttributeError raised
    and caught inside CPython each time, about 4 k machine instructions)."""

    __slots__ = ("_exchange", "on", "set_write_buffer_limit")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self.on = exchange.on
        self.set_write_buffer_limit = exchange.set_write_buffer_limit

    @property
    def req_complete(self) -> bool:
        return self._exchange.req_complete


def content_range(headers: AnyFields) -> tuple[int, int, int] | None:
    """``(first, last, total)`` of a 206's one Content-Range (RFC 9110 §14.4), else None."""
    values = get_values(headers, b"content-range")
    if len(values) != 1:
        return None
    unit, _, spec = values[0].strip().partition(b" ")
    span, _, total = spec.partition(b"/")
    first, _, last = span.partition(b"-")
    if unit.lower() != b"bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()):
        return None
    a, b, n = int(first), int(last), int(total)
    return (a, b, n) if a <= b < n else None


def part_range(headers: AnyFields, ranged: list[bytes]) -> tuple[int, int, int, int] | None:
    """The range asked for, if the stored part with ``headers`` holds all of it:
    ``(first, last, total, offset in the part)``."""
    held = content_range(headers)
    if held is None:
        return None
    start, end, total = held
    wanted = byte_range(ranged, total)
    if not isinstance(wanted, tuple) or not (start <= wanted[0] and wanted[1] <= end):
        return None
    return (wanted[0], wanted[1], total, wanted[0] - start)


def as_bytes(value: Any) -> bytes:
    """A field name or value as bytes (str and other values in latin-1)."""
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


class Asked:
    """What a request asks of its fetch beyond a plain GET (one with none of the fields in
    ``keys.SPECIAL``): its directives, a range, conditionals of its own, Authorization
    (None: not looked for yet)."""

    __slots__ = ("asks", "authorized", "ranged", "req_cc")

    def __init__(
        self,
        req_cc: Mapping[bytes, bytes | None] = _NO_DIRECTIVES,
        ranged: bool = False,
        asks: bool = False,
        authorized: bool | None = None,
    ) -> None:
        self.req_cc = req_cc
        self.ranged = ranged
        self.asks = asks
        self.authorized = authorized


# A plain GET asks nothing more: its head alone decides (shared, never changed).
PLAIN = Asked(authorized=False)


def _no_limit(limit: int) -> None:
    """A fetch with no client has no buffer to bound."""


class Fetch:
    """One response on its way from the inner handler: relayed, and kept to be stored
    (module docstring).  It is the sink of the response's calls: ``response_start``,
    ``response_body``, ``response_done``, ``abort``, as an exchange's."""

    # (Slots, each set by __init__: an attribute read from a class default is not
    # specialised by CPython 3.11, and a fetch reads most of these once or more.)
    __slots__ = (
        "asked",
        "cache",
        "client",
        "client_gone",
        "entry",
        "head",
        "key",
        "over",
        "parts",
        "request",
        "request_time",
        "room",
        "set_write_buffer_limit",
        "spool",
        "started",
        "to",
        "upstream",
        "waiters",
    )

    def __init__(
        self,
        cache: CacheHandler,
        key: bytes,
        client: Exchange | None,
        request: Request,
        entry: Entry | None,
        request_time: float,
        asked: Asked = PLAIN,
    ) -> None:
        self.cache = cache
        self.key = key
        self.client = client
        self.request = request
        self.entry = entry
        self.request_time = request_time
        # PLAIN: a GET with none of the fields that change what the cache does (no
        # directives, range, conditionals or Authorization), so the head alone decides.
        self.asked = asked
        self.started = False
        self.over = False
        self.parts: list[bytes] | None = None  # None: nothing (more) is kept
        self.spool: Spool | None = None  # where the body goes instead of parts (store.py)
        # Set with parts, when the response is to be stored (and read only then):
        # (status, phrase, fields' values, response time, analysis, head bytes) of it,
        self.head: tuple[int, bytes, tuple[bytes, ...], float, Head, int]
        # and the bytes its body may still grow by (max_object_size, then less).
        self.room: int
        self.upstream: Relay | None = None  # the request handed on (to cancel it, or pause it)
        # The requests that wait for it (collapsed forwarding): a list once one does.
        self.waiters: tuple[()] | list[tuple[Exchange, Request]] = ()
        # Where the body goes as it comes: the client, until it leaves or when it gets a
        # 304, a HEAD's answer or a stored response instead.
        self.to = client
        if client is None:
            self.client_gone = True
            # The proxy's bound per response goes to the client's exchange (its buffer is
            # the one that fills): none without a client.
            self.set_write_buffer_limit: Callable[[int], None] = _no_limit
            return
        self.client_gone = False
        self.set_write_buffer_limit = client.set_write_buffer_limit
        client.on("done", self._client_done)  # (its pauses: from response_start)

    # --- the request side ----------------------------------------------------------------

    def pause_request_body(self, paused: bool) -> None:
        pass  # the cache sends no request body

    def _client_pause(self, paused: bool) -> None:
        upstream = self.upstream
        if upstream is not None and not self.over:
            upstream.client_paused(paused)

    def _client_done(self, completed: bool) -> None:
        if completed:
            return
        self.client_gone = True
        self.to = None
        if self.parts is None and not self.waiters:
            self._give_up()
            return
        # The response goes on being stored (or to those waiting for it): if the client had
        # paused it, no resume will come from a client that left.
        upstream = self.upstream
        if upstream is not None and not self.over:
            upstream.client_paused(False)

    def _drop(self) -> None:
        """Keep nothing more of the response: it will not be stored."""
        self.parts = None
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.discard()

    def _give_up(self) -> None:
        """Nobody wants the rest: the request handed on is cancelled."""
        if self.over:
            return
        self.over = True
        self._drop()
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.cancel()
        self.cache.finished(self)

    # --- the response, from the inner handler ---------------------------------------------

    def response_nonfinal(self, status: Any, phrase: Any, headers: Any) -> None:
        pass  # interim responses are not relayed through the cache

    def response_start(self, status: int, phrase: bytes, fields: Headers) -> None:
        """The response head: status, phrase and fields as bytes, in a list that is the
        fetch's own (the proxy's relay and the stand-in make one for it): copied into a tuple
        when the response is to be stored, then given Cache-Status and passed on."""
        self.started = True
        cache = self.cache
        entry = self.entry
        if (
            entry is not None
            and (status == 304 or status >= 500)
            and self._answered(entry, status, fields)
        ):
            return
        # The decisions, once per head shape (heads.py), from the fields' names and values
        # (the values are what is stored of them).
        values = tuple(map(_VALUE, fields))
        head = analysed(status, tuple(map(_NAME, fields)), values)
        asked = self.asked
        at = head.shape.content_length  # (-1: no Content-Length)
        digits = len(fields[at][1]) if at >= 0 else -1  # (-1: a body of any length)
        if asked is PLAIN:  # the head's decision
            keep = head.keep
            if keep and digits >= cache.size_digits:
                keep = self._fits(fields[at][1])
        else:
            keep = self._keeps(status, fields, head, asked)
        if keep:
            key = self.key
            if cache.passes:
                cache.passes.pop(key, None)  # (a marked URL has nothing stored)
            self.parts = []
            self.room = cache.max_object_size
            if cache.spools:
                self.spool = cache.store.spool(key + PART if status == 206 else key)
            # The head's bytes as they came count the stored response's memory.
            upstream = self.upstream
            cx = None if upstream is None else upstream.cx
            size = 0 if cx is None else cx.res_head_size
            # (values: taken before Cache-Status joins the list)
            self.head = (status, phrase, values, cache.clock(), head, size)
        else:
            # Not stored: the body is relayed as it comes (response_body does nothing more
            # for it than the plain proxy), and nobody need wait for it.
            key = self.key
            if entry is not None:
                cache.store.remove(key)  # the stored response is superseded
            if status != 206 and head.mark is not None:
                cache.remember_pass(key, head.mark)  # (passing.py)
            if self.waiters or cache.pending.get(key) is self:
                cache.finished(self)
        client = self.to
        if client is None:
            return
        fields.append(head.cache_status[keep][entry is not None])  # (the fetch's own list)
        if asked is not PLAIN and self._answered_as_asked(client, status, phrase, fields):
            return
        # The client's pauses go upstream, unless its Content-Length has fewer digits than
        # the bound the inner handler keeps on what one response may leave in the client's
        # buffer (a proxy's write limit): such a body, held whole, stays within that bound.
        if digits < 0 or digits >= cache.quiet_digits:
            client.on("pause", self._client_pause)
        client.response_start(status, phrase, fields)

    def _answered_as_asked(
        self, client: Exchange, status: int, phrase: bytes, fields: Headers
    ) -> bool:
        """A HEAD's answer (the head alone), or a 304 when the client's own condition holds:
        True when the client has its answer, and nothing of the body goes to it."""
        request = self.request
        if request.method == _HEAD:
            client.response_start(status, phrase, fields)
        elif status == 200 and self.asked.asks and not_modified(request.headers, fields):
            out = [(n, v) for n, v in fields if n.lower() not in NOT_SERVED]
            client.response_start(304, b"Not Modified", out)
        else:
            return False
        self.to = None
        return True

    def _fits(self, length: bytes) -> bool:
        """Is a Content-Length no larger than ``max_object_size``?"""
        return not (length.isdigit() and int(length) > self.cache.max_object_size)

    def _keeps(self, code: int, fields: Headers, head: Head, asked: Asked) -> bool:
        """Is the response stored (RFC 9111 §3)? The head's decision, unless the request
        has directives or Authorization, or it is a part."""
        request = self.request
        req_cc = asked.req_cc
        if code == 206:
            # A single part is kept apart, stored on the rules of the whole (RFC 9111 §3.3
            # lets a cache store an incomplete response).
            keep = (
                asked.ranged
                and content_range(fields) is not None
                and storable(_GET, 200, request.headers, Fields(fields), req_cc, head.res_cc)
            )
        elif req_cc or (
            not head.auth_ok
            and (self._authorized() if asked.authorized is None else asked.authorized)
        ):
            keep = storable(_GET, code, request.headers, Fields(fields), req_cc, head.res_cc)
        else:
            keep = head.keep
        if not keep:
            return False
        at = head.shape.content_length
        return at < 0 or self._fits(fields[at][1])

    def _authorized(self) -> bool:
        asked = self.asked
        authorized = asked.authorized
        if authorized is None:
            authorized = bool(get_values(self.request.headers, b"authorization"))
            asked.authorized = authorized
        return authorized

    def _answered(self, entry: Entry, code: int, fields: Headers) -> bool:
        """The answer to a validation: is the stored response served instead?"""
        cache = self.cache
        now = cache.clock()
        if code == 304:
            # §4.3.4 selects stored responses by validator; this fetch validated one,
            # and a 304 says it is current (fields that describe the content are kept).
            names, values = freshened(entry.shape, entry.values, fields)
            head = analysed(entry.status, names, values)
            if entry.file is None:  # (from its head's analysis, as a fetched response)
                fresh = _fetched(
                    entry.key, entry.vary, entry.secondary, entry.status, entry.phrase,
                    values, [entry.whole()], self.request_time, now, head,
                )  # fmt: skip
            else:
                fresh = Entry(
                    entry.key, entry.vary, entry.secondary, entry.status, entry.phrase,
                    head.shape.fields(values), b"", self.request_time, now,
                    file=entry.file, head=head,
                )  # fmt: skip
            cache.store.put(fresh)
            self._serve_instead(fresh, now, _VALIDATED)
            return True
        if code >= 500 and self._stale_on_error(entry, now, code, fields):
            self._serve_instead(entry, now, b"fwd=stale; fwd-status=%d" % code)
            return True
        return False

    def response_body(self, chunk: bytes) -> None:
        parts = self.parts
        if parts is not None:
            room = self.room = self.room - len(chunk)
            spool = self.spool
            if spool is not None:
                if room < 0 or not spool.write(chunk):
                    self._too_big()  # (or unwritable)
            elif room >= 0:
                parts.append(chunk)
            else:
                self._too_big()
        client = self.to
        if client is not None:
            client.response_body(chunk)

    def _too_big(self) -> None:
        """The body grew past ``max_object_size``: the rest streams through, not kept."""
        self._drop()
        self.cache.finished(self)
        if self.client_gone:
            self._give_up()

    def response_done(self, trailers: Any = None, close: bool = False) -> None:
        if self.over:
            return
        self.over = True
        # The relay refers to this fetch (as its sink): the fetch lets go of it, so that
        # the two are freed by their counts, not left in a cycle for the collector.
        self.upstream = None
        cache = self.cache
        parts = self.parts
        if parts is not None:
            code, phrase, values, response_time, head, head_size = self.head
            if code == 206 or self.spool is not None:
                self._store_other()
            else:
                names = head.vary
                stored = _fetched(
                    self.key, names,
                    secondary_key(names, self.request.headers) if names else (),
                    code, phrase, values, parts, self.request_time, response_time, head, head_size,
                )  # fmt: skip
                if cache.store.put(stored):
                    cache.stats.stored += 1
        if self.started and not self.client_gone:
            self.client.response_done(_NO_TRAILERS)  # type: ignore[union-attr]
        pending = cache.pending
        key = self.key
        if pending.get(key) is self:
            del pending[key]
        if self.waiters:
            cache.finished(self)

    def _store_other(self) -> None:
        """Store a part (a 206), or a body the store spooled (RFC 9111 §3, §3.3)."""
        code, phrase, values, response_time, head, _ = self.head
        fields = head.shape.fields(values)
        cache = self.cache
        names = head.vary
        spool = self.spool
        self.spool = None  # (put uses it up)
        size = cache.max_object_size - self.room
        key = self.key
        if code == 206:
            key += PART
            held = content_range(fields)
            if held is None or size != held[1] - held[0] + 1:
                # a part that is not what its Content-Range says
                if spool is not None:
                    spool.discard()
                return
        secondary = secondary_key(names, self.request.headers) if names else ()
        if spool is None:
            stored = Entry.fetched(
                key, names, secondary, code, phrase, values, self.parts or [],
                self.request_time, response_time, head,
            )  # fmt: skip
        else:
            stored = Entry(
                key, names, secondary, code, phrase, fields, b"", self.request_time,
                response_time, file=BodyFile("", size), head=head,
            )  # fmt: skip
        if cache.store.put(stored, spool):
            cache.stats.stored += 1

    def abort(self) -> None:
        if self.over:
            return
        self.over = True
        self.upstream = None
        self._drop()
        client = self.client
        if client is not None and not self.client_gone:
            client.abort()
        self.cache.finished(self)

    # --- answering from the store after all ----------------------------------------------

    def _stale_on_error(self, entry: Entry, now: float, code: int, fields: Headers) -> bool:
        stored = Fields(entry.fields())
        res_cc = response_directives(stored)
        age = current_age(stored, entry.request_time, entry.response_time, now)
        lifetime = freshness_lifetime(entry.status, stored, entry.response_time, res_cc)
        # The proxy's own 502/503/504 (no upstream reached it: it carries no Via, which every
        # relayed response does) means the origin is out of reach.
        disconnected = (
            self.cache.settings.stale_on_disconnect
            and code in (502, 503, 504)
            and not get_values(fields, b"via")
        )
        return stale_if_error(self.asked.req_cc, res_cc, lifetime, age, disconnected=disconnected)

    def _serve_instead(self, entry: Entry, now: float, status: bytes) -> None:
        """The inner handler's answer is not relayed; the stored response is, with
        ``status`` in its Cache-Status."""
        self._drop()
        self.to = None
        client = self.client
        if client is not None and not self.client_gone:
            serve(client, self.request, entry, entry.age(now), status, None, self.asked.asks)
            self.client_gone = True  # answered: nothing more of this fetch goes to it
