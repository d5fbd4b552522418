"""The cache as a handler: it wraps another handler (a proxy route, a mounted app) and answers
what it can from its store.

Usage (Python)::

    from thor_gateway.cache import CacheHandler
    cached = CacheHandler(ProxyHandler(["http://10.0.0.5:8080"]), max_size=256 << 20)
    cached.handle(exchange, request)

and ``thor-gateway --proxy /=http://origin --cache``, or ``cache = true`` (or a table of
:class:`CacheSettings`) in a ``[[proxy]]`` table.

Theory of operation.  ``handle`` sorts each request:

- unsafe methods go to the inner handler on the client's exchange, watched only for the
  status, which invalidates the stored responses of the target (RFC 9111 §4.4); other
  methods than GET and HEAD, requests with a body or a Range, pass through untouched
  (``bypass``);
- GET and HEAD look up the target's variants, pick the one whose secondary key matches
  (§4.1), and ask :func:`~thor_gateway.cache.rules.reuse` whether it may answer: a hit is
  written from memory and never touches the inner handler;
- otherwise a :class:`Fetch` goes to the inner handler in place of an exchange: it is the
  inner handler's exchange (it emits ``request_done`` at once, relays ``pause`` from the
  client), it receives the response, streams it to the client and keeps a copy that is
  stored when complete (unless it grows beyond ``max_object_size``: then it streams
  through uncached).  A Fetch for a stored response that must be validated carries
  If-None-Match / If-Modified-Since; a 304 freshens the stored response (§3.2, §4.3.4),
  which is served as the 200 it stands for.
- collapsed forwarding: a miss for a key that a Fetch is already getting waits for it, then
  looks again (a hit, usually); a waiter goes on its own if the response was not stored.

The Cache-Status field (RFC 9211) says what happened: ``thor; hit``, ``thor; fwd=miss;
stored``, ``thor; fwd=stale; fwd-status=304``, ``thor; fwd=bypass``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, cast

import thor.loop
from thor.events import EventEmitter
from thor.http.exchange import Exchange
from thor.http.headers import get_values
from thor_gateway.cache.keys import (
    CONDITIONAL,
    cache_status,
    freshen,
    invalidated,
    not_modified,
    primary_key,
    secondary_key,
    vary_names,
)
from thor_gateway.cache.rules import (
    Reuse,
    current_age,
    freshness_lifetime,
    request_directives,
    response_directives,
    reuse,
    stale_if_error,
    storable,
)
from thor_gateway.cache.store import Entry, MemoryStore, Store
from thor_gateway.routing.request import Done, Handler, Request

__all__ = ["CacheHandler", "CacheSettings", "CacheStats", "cache_settings"]

Headers = list[tuple[bytes, bytes]]
_FRESH = Reuse.FRESH
_STALE = Reuse.STALE
_SWR = Reuse.STALE_REVALIDATE
_GET = b"GET"
_HEAD = b"HEAD"
# Edge Architecture 1.0: tells the origin Surrogate-Control may target this cache.
_CAPABILITY = (b"Surrogate-Capability", b'thor="Surrogate/1.0"')
_SAFE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_STRIPPED_ON_SERVE = frozenset({b"age", b"content-length", b"transfer-encoding"})


@dataclass(slots=True)
class CacheSettings:
    """The settings of one route's cache (the keys of a ``[[proxy]]`` ``cache`` table)."""

    max_size: int = 64 << 20  # bytes the memory store may hold (bodies and headers)
    max_object_size: int = 8 << 20  # larger responses stream through uncached
    collapse: bool = True  # concurrent misses for one key wait for one fetch

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def cache_settings(value: Any, defaults: Mapping[str, Any] | None = None) -> CacheSettings | None:
    """The settings a ``cache`` key (true/false or a table) asks for; None when off."""
    if value is None or value is False:
        return None
    table = dict(defaults or {})
    if isinstance(value, Mapping):
        table.update({k.replace("-", "_"): v for k, v in value.items()})
    elif value is not True:
        raise TypeError(f"cache must be true, false or a table, not {value!r}")
    unknown = set(table) - CacheSettings.names()
    if unknown:
        raise TypeError(f"unknown cache settings: {', '.join(sorted(unknown))}")
    return CacheSettings(**table)


class CacheStats:
    """Counters for ``/metrics``: what each request got."""

    __slots__ = ("bypass", "hits", "misses", "stale", "stored")

    def __init__(self) -> None:
        self.hits = 0  # answered from the store, fresh (or stale where allowed)
        self.misses = 0  # nothing usable stored: fetched
        self.stale = 0  # a stored response was validated (or served stale)
        self.bypass = 0  # not a request the cache takes part in
        self.stored = 0  # responses stored


class CacheHandler:
    """A handler that answers from a store what it can, and asks ``inner`` for the rest."""

    def __init__(
        self,
        inner: Handler,
        *,
        store: Store | None = None,
        loop: thor.loop.Loop | None = None,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> None:
        self.inner = inner
        self.settings = s = cache_settings(settings or True) or CacheSettings()
        self.store: Store = store if store is not None else MemoryStore(s.max_size)
        self.loop = loop  # the loop it serves on (kept for stores that need timers)
        self.clock = clock  # wall-clock seconds: compared with Date and Expires
        self.stats = CacheStats()
        self.pending: dict[bytes, Fetch] = {}

    # --- the Handler interface -----------------------------------------------------------

    def startup(self, done: Done) -> None:
        self.inner.startup(done)

    def shutdown(self, done: Done) -> None:
        self.inner.shutdown(done)

    def samples(self) -> dict[str, int]:
        """The counters and the stored bytes, as ``/metrics`` shows them."""
        stats = self.stats
        return {
            "hits": stats.hits,
            "misses": stats.misses,
            "stale": stats.stale,
            "bypass": stats.bypass,
            "stored": stats.stored,
            "bytes": int(getattr(self.store, "bytes", 0)),
        }

    def handle(self, exchange: Exchange, request: Request) -> None:
        method = request.method
        headers = request.headers
        if method != _GET and method != _HEAD:
            self.stats.bypass += 1
            if method in _SAFE:
                self.inner.handle(exchange, request)
            else:
                key = primary_key(request.scheme, headers, request.target)
                watcher = _Invalidating(exchange, self, method, key)
                self.inner.handle(cast(Exchange, watcher), request)
            return
        if _has_body(headers) or get_values(headers, b"range"):
            self.stats.bypass += 1  # ranges of stored responses are not served (yet)
            self.inner.handle(exchange, request)
            return
        req_cc = request_directives(headers)
        key = primary_key(request.scheme, headers, request.target)
        now = self.clock()
        entry = self._select(key, headers)
        if entry is not None:
            res_cc = response_directives(entry.headers)
            age = current_age(entry.headers, entry.request_time, entry.response_time, now)
            lifetime = freshness_lifetime(entry.status, entry.headers, entry.response_time, res_cc)
            decision = reuse(req_cc, res_cc, lifetime, age)
            if decision is _FRESH or decision is _STALE or decision is _SWR:
                self.stats.hits += 1
                entry.hits += 1
                self.serve(exchange, request, entry, age, b"hit")
                if decision is _SWR and key not in self.pending:
                    self._fetch(None, exchange, request, key, entry, req_cc)
                return
            if b"only-if-cached" in req_cc:
                self._gateway_timeout(exchange, request)
                return
            self.stats.stale += 1
            self._fetch(exchange, exchange, request, key, entry, req_cc)
            return
        if b"only-if-cached" in req_cc:  # RFC 9111 §5.2.1.7
            self._gateway_timeout(exchange, request)
            return
        if b"no-store" in req_cc and method == _GET:
            self.stats.bypass += 1
            self.inner.handle(exchange, request)
            return
        pending = self.pending.get(key)
        if pending is not None and self.settings.collapse and "thor.cache" not in request.state:
            # Collapsed forwarding: look again once the fetch in flight is over.
            pending.waiters.append((exchange, request))
            return
        self.stats.misses += 1
        self._fetch(exchange, exchange, request, key, None, req_cc)

    # --- reading the store ---------------------------------------------------------------

    def _select(self, key: bytes, headers: Headers) -> Entry | None:
        """The stored variant this request selects (RFC 9111 §4.1), the newest if several."""
        best: Entry | None = None
        for entry in self.store.variants(key):
            if entry.vary and secondary_key(entry.vary, headers) != entry.secondary:
                continue
            if best is None or entry.response_time > best.response_time:
                best = entry
        return best

    def serve(
        self, exchange: Exchange, request: Request, entry: Entry, age: float, status: bytes
    ) -> None:
        """Answer from ``entry``: with Age (§5.1), as a 304 if the client's condition holds."""
        out = [(n, v) for n, v in entry.headers if n.lower() not in _STRIPPED_ON_SERVE]
        out.append((b"Age", b"%d" % age))
        out.append(cache_status(status))
        if (
            entry.status == 200
            and _conditional(request.headers)
            and not_modified(request.headers, entry.headers)
        ):
            exchange.response_start(304, b"Not Modified", out)
            exchange.response_done([])
            return
        if entry.status != 204:  # RFC 9110 §8.6: a 204 has no Content-Length
            out.append((b"Content-Length", b"%d" % len(entry.body)))
        exchange.response_start(entry.status, entry.phrase, out)
        if request.method != _HEAD and entry.body:
            exchange.response_body(entry.body)
        exchange.response_done([])

    def _gateway_timeout(self, exchange: Exchange, request: Request) -> None:
        body = b"" if request.method == _HEAD else b"not in the cache (only-if-cached)\n"
        exchange.response_start(
            504,
            b"Gateway Timeout",
            [
                (b"Content-Type", b"text/plain"),
                (b"Content-Length", b"%d" % len(body)),
                cache_status(b"fwd=miss", b"detail=only-if-cached"),
            ],
        )
        if body:
            exchange.response_body(body)
        exchange.response_done([])

    # --- going to the inner handler --------------------------------------------------------

    def _fetch(
        self,
        client: Exchange | None,
        origin: Exchange,
        request: Request,
        key: bytes,
        entry: Entry | None,
        req_cc: Mapping[bytes, bytes | None],
    ) -> None:
        headers = [(n, v) for n, v in request.headers if n.lower() not in CONDITIONAL]
        headers.append(_CAPABILITY)
        if entry is not None:  # RFC 9111 §4.3.1: validators of the stored response
            etags = get_values(entry.headers, b"etag")
            if etags:
                headers.append((b"If-None-Match", etags[0]))
            modified = get_values(entry.headers, b"last-modified")
            if modified:
                headers.append((b"If-Modified-Since", modified[0]))
        # A HEAD goes as the GET it stands for: the answer fills (or freshens) the store.
        upstream = replace(request, method=_GET, headers=headers)
        fetch = Fetch(self, key, client, origin, request, entry, req_cc, self.clock())
        if key not in self.pending:
            self.pending[key] = fetch
        try:
            self.inner.handle(cast(Exchange, fetch), upstream)
        except BaseException:
            fetch.over = True
            self.finished(fetch)  # the waiters must not wait for it
            raise
        fetch.emit("request_done", [])

    def finished(self, fetch: Fetch) -> None:
        """A fetch is over, or will store nothing: wake the requests that waited for it."""
        if self.pending.get(fetch.key) is fetch:
            del self.pending[fetch.key]
        waiters, fetch.waiters = fetch.waiters, []
        for exchange, request in waiters:
            request.state["thor.cache"] = True  # collapse once: never wait twice
            self.handle(exchange, request)

    def invalidate(self, keys: list[bytes]) -> None:
        for key in keys:
            self.store.remove(key)


def _has_body(headers: Headers) -> bool:
    for name, value in headers:
        lname = name.lower()
        if lname == b"transfer-encoding" or (lname == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _conditional(headers: Headers) -> bool:
    return any(n.lower() in CONDITIONAL for n, _ in headers)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")


class _Invalidating:
    """The client's exchange, watched for the status of an unsafe request (RFC 9111 §4.4)."""

    def __init__(self, exchange: Any, cache: CacheHandler, method: bytes, key: bytes) -> None:
        self._exchange = exchange
        self._cache = cache
        self._method = method
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        headers = list(headers)
        fields = [(_as_bytes(n), _as_bytes(v)) for n, v in headers]
        self._cache.invalidate(invalidated(self._method, int(status), self._key, fields))
        self._exchange.response_start(status, phrase, headers)


class Fetch(EventEmitter):
    """The exchange the inner handler answers when the cache asks it (module docstring)."""

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
    ) -> None:
        super().__init__()
        self.cache = cache
        self.key = key
        self.client = client
        self.origin = origin  # attributes (loop, addresses, scheme) come from here
        self.request = request
        self.entry = entry
        self.req_cc = req_cc
        self.request_time = request_time
        self.waiters: list[tuple[Exchange, Request]] = []
        self.started = False
        self.over = False
        self.client_gone = client is None
        self.client_body = client is not None  # False once the client got a 304 or no body
        self.head: tuple[int, bytes, Headers, float] | None = None
        self.parts: list[bytes] | None = None
        self.size = 0
        if client is not None:
            client.on("pause", self._client_pause)
            client.on("done", self._client_done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.origin, name)

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

    def _give_up(self) -> None:
        """Nobody wants the rest: let the inner handler cancel (its ``done`` listener)."""
        if self.over:
            return
        self.over = True
        self.parts = None
        self.emit("done", False)
        self.cache.finished(self)

    # --- the response, from the inner handler ---------------------------------------------

    def response_nonfinal(self, status: Any, phrase: Any, headers: Any) -> None:
        pass  # interim responses are not relayed through the cache

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        self.started = True
        code = int(status)
        phrase = _as_bytes(phrase)
        fields = [(_as_bytes(n), _as_bytes(v)) for n, v in headers]
        cache = self.cache
        now = cache.clock()
        entry = self.entry
        if entry is not None:
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
                )
                cache.store.put(fresh)
                self._serve_instead(fresh, now, b"fwd=stale", b"fwd-status=304")
                return
            if code >= 500 and self._stale_on_error(entry, now):
                self._serve_instead(entry, now, b"fwd=stale", b"fwd-status=%d" % code)
                return
        request = self.request
        res_cc = response_directives(fields)
        keep = storable(_GET, code, request.headers, fields, self.req_cc, res_cc)
        if keep:
            lengths = get_values(fields, b"content-length")
            if (
                lengths
                and lengths[0].isdigit()
                and int(lengths[0]) > cache.settings.max_object_size
            ):
                keep = False
        if keep:
            self.parts = []
            self.head = (code, phrase, fields, now)
        else:
            if entry is not None:
                cache.store.remove(self.key)  # the stored response is superseded
            cache.finished(self)  # waiters need not wait for a response that is not kept
        client = self.client
        if client is None or self.client_gone:
            return
        forward = b"fwd=stale" if entry is not None else b"fwd=miss"
        params = [forward, b"fwd-status=%d" % code] + ([b"stored"] if keep else [])
        out = [*fields, cache_status(*params)]
        if request.method == _HEAD:
            self.client_body = False
        if code == 200 and _conditional(request.headers) and not_modified(request.headers, fields):
            out = [(n, v) for n, v in out if n.lower() not in _STRIPPED_ON_SERVE]
            client.response_start(304, b"Not Modified", out)
            self.client_body = False
            return
        client.response_start(code, phrase, out)

    def response_body(self, chunk: bytes) -> None:
        parts = self.parts
        if parts is not None:
            self.size += len(chunk)
            if self.size > self.cache.settings.max_object_size:
                self.parts = None  # too big: the rest streams through, nothing is kept
                self.cache.finished(self)
                if self.client_gone:
                    self._give_up()
                    return
            else:
                parts.append(chunk)
        if self.client_body and not self.client_gone and self.client is not None:
            self.client.response_body(chunk)

    def response_done(self, trailers: Any = None, close: bool = False) -> None:
        if self.over:
            return
        self.over = True
        cache = self.cache
        if self.parts is not None and self.head is not None:
            code, phrase, fields, response_time = self.head
            request = self.request
            names = vary_names(fields)
            stored = Entry(
                self.key,
                names,
                secondary_key(names, request.headers),
                code,
                phrase,
                fields,
                b"".join(self.parts),
                self.request_time,
                response_time,
            )
            if cache.store.put(stored):
                cache.stats.stored += 1
        self.parts = None
        client = self.client
        if client is not None and not self.client_gone and self.started:
            client.response_done([])
        self.emit("done", True)
        cache.finished(self)

    def abort(self) -> None:
        if self.over:
            return
        self.over = True
        self.parts = None
        client = self.client
        if client is not None and not self.client_gone:
            client.abort()
        self.cache.finished(self)

    # --- answering from the store after all ----------------------------------------------

    def _stale_on_error(self, entry: Entry, now: float) -> bool:
        res_cc = response_directives(entry.headers)
        age = current_age(entry.headers, entry.request_time, entry.response_time, now)
        lifetime = freshness_lifetime(entry.status, entry.headers, entry.response_time, res_cc)
        return stale_if_error(self.req_cc, res_cc, lifetime, age)

    def _serve_instead(self, entry: Entry, now: float, *status: bytes) -> None:
        """The inner handler's answer is not relayed; the stored response is."""
        self.parts = None
        self.client_body = False
        client = self.client
        if client is not None and not self.client_gone:
            age = current_age(entry.headers, entry.request_time, entry.response_time, now)
            self.cache.serve(client, self.request, entry, age, b"; ".join(status))
            self.client_gone = True  # answered: nothing more of this fetch goes to it
