"""The fetch: what the inner handler answers in place of an exchange when the cache asks.

A :class:`Fetch` is the exchange a cache miss (or a validation, or a background refresh)
hands to the wrapped handler.  Towards that handler it is a request that is complete at
once (``request_done`` follows ``handle``) and whose client pauses and leaves like the
real one; the response it receives goes to the client as it arrives, and a copy is kept
until it is whole and stored (or grows beyond ``max_object_size``, and streams through):
in memory, or, when the store spools (the disk store), written to the store's temporary file
as each chunk arrives, so that a body is never held whole.
A 304 to a validation freshens the stored response (RFC 9111 §3.2, §4.3.4) and the stored
response is served instead; so is a stale one when the answer is an error and
``stale-if-error`` allows it (RFC 5861 §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING, Any

from thor.events import EventEmitter
from thor.http.exchange import Exchange
from thor.http.headers import get_values
from thor_gateway.cache.heads import Head, analyse
from thor_gateway.cache.keys import (
    CONDITIONAL,
    byte_range,
    cache_status,
    freshen,
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
    "STATUS",
    "STRIPPED_ON_SERVE",
    "Fetch",
    "as_bytes",
    "conditional",
    "content_range",
    "fetch_status",
    "part_range",
]

Headers = list[tuple[bytes, bytes]]
_GET = b"GET"
_HEAD = b"HEAD"
# Stored parts (single-range 206 responses) live under their URL's key plus this (a
# request-target has no space), apart from the complete responses.
PART = b" part"
_NO_TRAILERS: Headers = []
# The Cache-Status field of a fetch, by (validating a stored response, status, stored):
# worked out once each.
STATUS: dict[tuple[bool, int, bool], tuple[bytes, bytes]] = {}
# Fields a stored response is not served with as stored: the cache writes its own.
STRIPPED_ON_SERVE = frozenset({b"age", b"content-length", b"transfer-encoding"})


def content_range(headers: Headers) -> tuple[int, int, int] | None:
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


def part_range(headers: Headers, ranged: list[bytes]) -> tuple[int, int, int, int] | None:
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


def conditional(headers: Headers) -> bool:
    return any(n.lower() in CONDITIONAL for n, _ in headers)


def as_bytes(value: Any) -> bytes:
    """A field name or value as bytes (str and other values in latin-1)."""
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


def fetch_status(entry: Entry | None, code: int, keep: bool) -> tuple[bytes, bytes]:
    """The Cache-Status field of a fetch's answer (RFC 9211 §2), kept in ``STATUS``."""
    forward = b"fwd=stale" if entry is not None else b"fwd=miss"
    status = cache_status(forward, b"fwd-status=%d" % code, *([b"stored"] if keep else []))
    if 100 <= code <= 999:  # (a bounded set of keys)
        STATUS[(entry is not None, code, keep)] = status
    return status


class Fetch(EventEmitter):
    """The exchange the inner handler answers when the cache asks it (module docstring)."""

    # Until set on the instance (no store per fetch for what most fetches never change):
    started = False
    over = False
    # (status, phrase, fields, response time, analysis, header bytes) of one to store
    head: tuple[int, bytes, Headers, float, Head, int] | None = None
    parts: list[bytes] | None = None  # None: nothing (more) is kept
    spool: Spool | None = None  # where the body goes instead of parts (store.py)
    size = 0

    def __init__(
        self,
        cache: CacheHandler,
        key: bytes,
        client: Exchange | None,
        origin: Exchange,
        request: Request,
        entry: Entry | None,
        req_cc: Mapping[bytes, bytes | None],
        request_time: float,
        ranged: bool = False,
        asks: bool = False,
        authorized: bool | None = None,
    ) -> None:
        EventEmitter.__init__(self)  # (no super object per fetch)
        self.cache = cache
        self.key = key
        self.client = client
        self.origin = origin  # attributes (loop, addresses, scheme) come from here
        self.request = request
        self.entry = entry
        self.req_cc = req_cc
        self.request_time = request_time
        self.waiters: list[tuple[Exchange, Request]] = []
        self.ranged = ranged  # the request has a Range
        self.asks = asks  # the client's request is conditional (If-None-Match...)
        self.client_gone = client is None
        self.client_body = client is not None  # False once the client got a 304 or no body
        self.authorized = authorized  # the request has Authorization (None: not looked)
        if client is not None:
            client.on("pause", self._client_pause)
            client.on("done", self._client_done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.origin, name)

    # What the proxy reads of every exchange it is handed: a property is found at once,
    # where __getattr__ comes only after a failed lookup.
    @property
    def client_address(self) -> Any:
        return self.origin.client_address

    @property
    def scheme(self) -> Any:
        return self.origin.scheme

    def set_write_buffer_limit(self, limit: int) -> None:
        # (the proxy's, per response: not through __getattr__, which comes after a failed
        # lookup and its AttributeError)
        self.origin.set_write_buffer_limit(limit)

    # --- the request side, as the inner handler sees it ------------------------------------

    def pause_request_body(self, paused: bool) -> None:
        pass  # the cache sends no request body

    def _client_pause(self, paused: bool) -> None:
        if not self.over:
            self.emit("pause", paused)

    def _client_done(self, completed: bool) -> None:
        if completed:
            return
        self.client_gone = True
        if self.parts is None and not self.waiters:
            self._give_up()

    def _drop(self) -> None:
        """Keep nothing more of the response: it will not be stored."""
        self.parts = None
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.discard()

    def _give_up(self) -> None:
        """Nobody wants the rest: let the inner handler cancel (its ``done`` listener)."""
        if self.over:
            return
        self.over = True
        self._drop()
        self.emit("done", False)
        self.forget_listeners()  # (as in response_done)
        self.cache.finished(self)

    # --- the response, from the inner handler ---------------------------------------------

    def response_nonfinal(self, status: Any, phrase: Any, headers: Any) -> None:
        pass  # interim responses are not relayed through the cache

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        self.started = True
        code = int(status)
        if phrase.__class__ is not bytes:
            phrase = as_bytes(phrase)
        try:  # bytes pairs (the proxy's): the list is taken as it is, and measured in C
            header_bytes = len(b"".join(chain.from_iterable(headers)))
            fields = headers if headers.__class__ is list else list(headers)
        except TypeError:
            header_bytes = -1
            fields = [(as_bytes(n), as_bytes(v)) for n, v in headers]
        cache = self.cache
        entry = self.entry
        if (
            entry is not None
            and (code == 304 or code >= 500)
            and self._answered(entry, code, fields)
        ):
            return
        request = self.request
        head = analyse(code, fields)  # the decisions, once per head shape (heads.py)
        keep = self._keeps(code, fields, head)
        if keep:
            cache.passes.pop(self.key, None)  # (a marked URL has nothing stored)
            self.parts = []
            if cache.spools:
                self.spool = cache.store.spool(self.key + PART if code == 206 else self.key)
            self.head = (code, phrase, fields, cache.clock(), head, header_bytes)
        else:
            # Not stored: the body is relayed as it comes (response_body does nothing more
            # for it than the plain proxy), and nobody need wait for it.
            if entry is not None:
                cache.store.remove(self.key)  # the stored response is superseded
            if code != 206 and head.mark is not None:
                cache.remember_pass(self.key, head.mark)  # (passing.py)
            if self.waiters or cache.pending.get(self.key) is self:
                cache.finished(self)
        client = self.client
        if client is None or self.client_gone:
            return
        status = STATUS.get((entry is not None, code, keep)) or fetch_status(entry, code, keep)
        out = [*fields, status]  # (fields may be the inner handler's list, or stored)
        if request.method == _HEAD:
            self.client_body = False
        if code == 200 and self.asks and not_modified(request.headers, fields):
            out = [(n, v) for n, v in out if n.lower() not in STRIPPED_ON_SERVE]
            client.response_start(304, b"Not Modified", out)
            self.client_body = False
            return
        client.response_start(code, phrase, out)

    def _keeps(self, code: int, fields: Headers, head: Head) -> bool:
        """Is the response stored (RFC 9111 §3)? The head's decision, unless the request
        has directives or Authorization, or it is a part."""
        request = self.request
        if code == 206:
            # A single part is kept apart, stored on the rules of the whole (RFC 9111 §3.3
            # lets a cache store an incomplete response).
            keep = (
                self.ranged
                and content_range(fields) is not None
                and storable(_GET, 200, request.headers, Fields(fields), self.req_cc, head.res_cc)
            )
        elif self.req_cc or (
            not head.auth_ok
            and (self._authorized() if self.authorized is None else self.authorized)
        ):
            keep = storable(_GET, code, request.headers, Fields(fields), self.req_cc, head.res_cc)
        else:
            keep = head.keep
        if not keep:
            return False
        at = head.shape.content_length
        length = fields[at][1] if at >= 0 else b""
        return not (length.isdigit() and int(length) > self.cache.settings.max_object_size)

    def _authorized(self) -> bool:
        authorized = self.authorized
        if authorized is None:
            authorized = self.authorized = bool(get_values(self.request.headers, b"authorization"))
        return authorized

    def _answered(self, entry: Entry, code: int, fields: Headers) -> bool:
        """The answer to a validation: is the stored response served instead?"""
        cache = self.cache
        now = cache.clock()
        if code == 304:
            # §4.3.4 selects stored responses by validator; this fetch validated one,
            # and a 304 says it is current (fields that describe the content are kept).
            fresh = Entry(
                entry.key,
                entry.vary,
                entry.secondary,
                entry.status,
                entry.phrase,
                freshen(entry.headers, fields),
                entry.body,
                self.request_time,
                now,
                file=entry.file,
            )
            cache.store.put(fresh)
            self._serve_instead(fresh, now, b"fwd=stale", b"fwd-status=304")
            return True
        if code >= 500 and self._stale_on_error(entry, now, code, fields):
            self._serve_instead(entry, now, b"fwd=stale", b"fwd-status=%d" % code)
            return True
        return False

    def response_body(self, chunk: bytes) -> None:
        parts = self.parts
        if parts is not None:
            self.size += len(chunk)
            spool = self.spool
            if self.size > self.cache.settings.max_object_size or (
                spool is not None and not spool.write(chunk)
            ):
                self._drop()  # too big (or unwritable): the rest streams through, not kept
                self.cache.finished(self)
                if self.client_gone:
                    self._give_up()
                    return
            elif spool is None:
                parts.append(chunk)
        if self.client_body and not self.client_gone and self.client is not None:
            self.client.response_body(chunk)

    def response_done(self, trailers: Any = None, close: bool = False) -> None:
        if self.over:
            return
        self.over = True
        cache = self.cache
        stored_head = self.head
        if self.parts is not None and stored_head is not None:
            code, phrase, fields, response_time, head, header_bytes = stored_head
            request = self.request
            names = head.vary
            spool = self.spool
            # (one chunk: that chunk itself, not a copy; spooled: in the store's file)
            body = b"".join(self.parts) if spool is None else b""
            held = content_range(fields) if code == 206 else None
            if held is not None and self.size != held[1] - held[0] + 1:
                held = None  # a part that is not what its Content-Range says
                self._drop()
                spool = None
            key = self.key + PART if code == 206 else self.key
            secondary = secondary_key(names, request.headers) if names else ()
            if spool is None:
                stored = Entry.fetched(
                    key, names, secondary, code, phrase, fields, body, self.request_time,
                    response_time, head, header_bytes,
                )  # fmt: skip
            else:
                stored = Entry(
                    key, names, secondary, code, phrase, fields, body, self.request_time,
                    response_time, file=BodyFile("", self.size), head=head,
                    header_bytes=header_bytes,
                )  # fmt: skip
            self.spool = None  # (put uses it up)
            if self.parts is not None and cache.store.put(stored, spool):
                cache.stats.stored += 1
        self.parts = None
        if self.spool is not None:
            self._drop()
        client = self.client
        if client is not None and not self.client_gone and self.started:
            client.response_done(_NO_TRAILERS)
        self.emit("done", True)
        # The inner handler's listeners refer back to this fetch (as it to them): dropped,
        # the two are freed by their counts, not left in a cycle for the collector.
        self.forget_listeners()
        if self.waiters or cache.pending.get(self.key) is self:
            cache.finished(self)

    def abort(self) -> None:
        if self.over:
            return
        self.over = True
        self._drop()
        client = self.client
        if client is not None and not self.client_gone:
            client.abort()
        self.cache.finished(self)

    # --- answering from the store after all ----------------------------------------------

    def _stale_on_error(self, entry: Entry, now: float, code: int, fields: Headers) -> bool:
        res_cc = response_directives(entry.headers)
        age = current_age(entry.headers, entry.request_time, entry.response_time, now)
        lifetime = freshness_lifetime(entry.status, entry.headers, entry.response_time, res_cc)
        # The proxy's own 502/503/504 (no upstream reached it: it carries no Via, which every
        # relayed response does) means the origin is out of reach.
        disconnected = (
            self.cache.settings.stale_on_disconnect
            and code in (502, 503, 504)
            and not get_values(fields, b"via")
        )
        return stale_if_error(self.req_cc, res_cc, lifetime, age, disconnected=disconnected)

    def _serve_instead(self, entry: Entry, now: float, *status: bytes) -> None:
        """The inner handler's answer is not relayed; the stored response is."""
        self._drop()
        self.client_body = False
        client = self.client
        if client is not None and not self.client_gone:
            age = current_age(entry.headers, entry.request_time, entry.response_time, now)
            self.cache.serve(client, self.request, entry, age, b"; ".join(status))
            self.client_gone = True  # answered: nothing more of this fetch goes to it
