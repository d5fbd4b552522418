"""The cache as a handler: it wraps another handler (a proxy route, a mounted app) and answers
what it can from its store.

Usage (Python)::

    from thor_gateway.cache import CacheHandler
    cached = CacheHandler(ProxyHandler(["http://10.0.0.5:8080"]), max_size=256 << 20)
    cached.handle(exchange, request)

and ``thor-gateway --proxy /=http://origin --cache``, or ``cache = true`` (or a table of
:class:`CacheSettings`) in a ``[[proxy]]`` table.

Theory of operation.  ``handle`` sorts each request:

- unsafe methods go to the inner handler on the client's exchange, watched for the status,
  which invalidates the stored responses of the target (RFC 9111 §4.4), and for a POST
  response that names its own URL (kept for GETs, RFC 9110 §9.3.3); other methods than GET
  and HEAD, requests with a body or with If-Range, and ``no-store`` misses pass through
  untouched (``bypass``);
- GET and HEAD look up the target's variants, pick the one whose secondary key matches
  (§4.1), and ask :func:`~thor_gateway.cache.rules.reuse` whether it may answer: a hit is
  written from memory and never touches the inner handler (a Range is cut from a stored
  200, or from a stored part that holds it);
- otherwise the inner handler is asked, and its answer goes to a :class:`Fetch`, which
  streams it to the client and keeps a copy that is stored when complete (unless it grows
  beyond ``max_object_size``: then it streams through uncached).  A proxy relays its
  upstream's response straight into the Fetch (``ProxyHandler.cache_fetch``: no exchange
  in between, the cache's own fields appended to the request); any other handler answers
  on a stand-in exchange (:mod:`~thor_gateway.cache.inner`).  A Fetch for a stored
  response that must be validated carries If-None-Match / If-Modified-Since; a 304
  freshens the stored response (§3.2, §4.3.4), which is served as the 200 it stands for.
- collapsed forwarding: a miss (or a stale hit) for a key that a Fetch is already getting
  waits for it, then looks again (a hit, usually); the waiters go on their own as soon as
  the response is known not to be stored.
- a URL whose last response said ``no-store`` or ``private`` is passed: a plain GET for it
  goes to the inner handler on the client's exchange, its response head given Cache-Status
  on the way (:class:`~thor_gateway.cache.passing.Pass`: a proxy relays the head through it
  itself, any other handler answers on a ``Passing``), no Fetch, until its Cache-Control
  changes.

The Cache-Status field (RFC 9211) says what happened: ``thor; hit``, ``thor; fwd=miss;
fwd-status=200; stored``, ``thor; fwd=stale; fwd-status=304``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

import thor.loop
from thor.http.exchange import Exchange
from thor.http.headers import get_values
from thor_gateway.cache.answer import HIT, gateway_timeout, serve, serve_part
from thor_gateway.cache.body import GONE, open_stored, send_stored
from thor_gateway.cache.disk import DiskStore
from thor_gateway.cache.fetch import (
    PART,
    Asked,
    Fetch,
    part_range,
)
from thor_gateway.cache.inner import forwarder, passer
from thor_gateway.cache.invalidating import Invalidating
from thor_gateway.cache.keys import (
    CONDITIONAL,
    SCHEME_PREFIX,
    SPECIAL,
    known_shape,
    language_chosen,
    primary_key,
    request_shape,
    secondary_key,
)
from thor_gateway.cache.passing import Mark, Pass, pass_mark
from thor_gateway.cache.rules import (
    Fields,
    Reuse,
    request_directives,
    reuse,
)
from thor_gateway.cache.settings import CacheSettings, CacheStats, cache_settings
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
_OWN = [_CAPABILITY]  # (never changed)
_NO_DIRECTIVES: Mapping[bytes, bytes | None] = {}
_NAME = itemgetter(0)
_NO_TRAILERS: Headers = []
_LANGUAGE = (b"accept-language",)
_SAFE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_PASSES = 4096  # URLs remembered as not stored
# What a HEAD with none of the fields in SPECIAL asks of its fetch: its head alone.
_PLAIN_HEAD = Asked(_NO_DIRECTIVES, authorized=False)


def _inner_attribute(name: str) -> property:
    """A read-only attribute that is the wrapped handler's (``self.inner``'s)."""
    return property(lambda self: getattr(self.inner, name))


class CacheHandler:
    """A handler that answers from a store what it can, and asks ``inner`` for the rest."""

    # What the gateway reads of a route's handler (/metrics, the status page, draining) is
    # the wrapped handler's: passed on by name.  (Not by __getattr__: a class that has one
    # gets no specialised attribute access, and the cache reads its own attributes on
    # every request.)  A property that raises AttributeError makes hasattr() False.

    upstream_samples = _inner_attribute("upstream_samples")
    upstream_status = _inner_attribute("upstream_status")
    tunnels = _inner_attribute("tunnels")
    websockets = _inner_attribute("websockets")
    accepts_connect = _inner_attribute("accepts_connect")

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
        self._forward = forwarder(inner)  # how a fetch is handed to it (inner.py)
        self._pass = passer(inner)  # and a passed GET
        self.settings = s = cache_settings(settings or True) or CacheSettings()
        # (read by every fetch that stores: a Content-Length with fewer digits than this
        # limit is within it, and need not be parsed)
        self.max_object_size = s.max_object_size
        self.size_digits = len(str(s.max_object_size))
        # A fetched body whose Content-Length has fewer digits than this is relayed without
        # listening for the client's pauses (fetch.py): those of the bound the inner handler
        # keeps on what one response leaves in the client's buffer (a proxy's write limit);
        # 0 (always listen) for other handlers.
        limit = getattr(inner, "write_limit", None)
        self.quiet_digits = len(str(limit)) if isinstance(limit, int) and limit > 0 else 0
        if store is None:
            store = DiskStore(s.dir, s.max_size) if s.dir else MemoryStore(s.max_size)
        self.store: Store = store
        # Whether the store takes bodies as they arrive (Store.spool): the memory store's
        # spool() answers None, and a fetch need not ask it.
        self.spools = getattr(type(store), "spool", None) is not MemoryStore.spool
        self.loop = loop  # the loop it serves on (kept for stores that need timers)
        self.clock = clock  # wall-clock seconds: compared with Date and Expires
        self.stats = CacheStats()
        self.pending: dict[bytes, Fetch] = {}
        self.passes: dict[bytes, Mark] = {}  # URLs whose responses are not stored: passing.py

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

    def handle(self, exchange: Exchange, request: Request) -> None:  # noqa: C901 (one frame: the hot path)
        method = request.method
        headers = request.headers
        if method != _GET and method != _HEAD:
            self._other_method(exchange, request)
            return
        # What the field names say, once per list of names (keys.py): most requests carry
        # none of the fields that change what the cache does, and then nothing more of
        # their header section is read than the Host.
        shape = known_shape(tuple(map(_NAME, headers))) or request_shape(headers)
        target = request.target
        at = shape.host
        prefix = SCHEME_PREFIX.get(request.scheme)
        if at >= 0 and prefix is not None and target[:1] == b"/":  # (as primary_key does)
            key = prefix + headers[at][1].strip().lower() + target
        else:
            key = primary_key(request.scheme, headers, target)
        now = self.clock()
        if not shape.plain:
            self._special(exchange, request, key, shape.names, now)
            return
        passes = self.passes
        if passes and method == _GET:
            mark = passes.get(key)
            if mark is not None:  # (nothing stored: Fetch drops marks)
                self.stats.misses += 1
                self._pass(exchange, request, _OWN, Pass(self, key, mark).relayed)
                return
        variants = self.store.variants(key)
        if not variants:
            self._miss(exchange, request, key, now)
            return
        entry = variants[0]
        if entry.vary or len(variants) > 1:  # (most URLs: neither)
            entry = self._select(key, headers, variants)  # type: ignore[assignment]
            if entry is None:  # (none of its variants is this request's)
                self._miss(exchange, request, key, now)
                return
        if now < entry.fresh_until and entry.file is None:
            # The common hit: fresh, and nothing in the request asks for more (no
            # directives, conditionals or range), so reuse() would say FRESH.
            self.stats.hits += 1
            resident = now - entry.response_time
            age = entry.initial_age + resident if resident > 0 else entry.initial_age
            out = [
                *(entry.served or entry.serving()),
                (b"Age", b"%d" % age),
                HIT,
                *entry.length,
            ]
            exchange.response_start(entry.status, entry.phrase, out)
            if method == _GET:  # (an empty body is not written)
                exchange.response_body(entry.body if entry.pieces is None else entry.whole())
            exchange.response_done(_NO_TRAILERS)
            return
        if now > entry.serve_until:
            # Stale past any window: reuse() would say VALIDATE (§4.3), so it is fetched
            # (with the stored validators) without asking it, or waits for the fetch in
            # flight (when a popular response expires).
            if key in self.pending and self._wait(key, exchange, request):
                return
            self.stats.stale += 1
            self._fetch_plain(exchange, request, key, entry, now)
            return
        if entry.file is not None and now < entry.fresh_until:
            if not self._hit_from_file(exchange, entry, method, now):
                # its file was replaced or removed since it was listed: a miss
                self._miss(exchange, request, key, now)
            return
        self._stored(exchange, request, key, entry, _NO_DIRECTIVES, now, shape.names)

    def _special(
        self, exchange: Exchange, request: Request, key: bytes, names: frozenset[bytes], now: float
    ) -> None:
        """A request with directives, conditionals, a range, a body or an Upgrade."""
        headers = request.headers
        ranged = get_values(headers, b"range")
        # A request that asks to switch protocols (RFC 9110 §7.8) is the proxy's to relay:
        # a 101 is not stored, and the connection is handed over after it.
        if _has_body(headers) or (ranged and b"if-range" in names) or b"upgrade" in names:
            self.stats.bypass += 1
            self.inner.handle(exchange, request)
            return
        req_cc = request_directives(headers)
        entry = self._select(key, headers)
        if ranged:
            self._range(exchange, request, key, entry, req_cc, now, ranged)
            return
        if entry is not None:
            self._stored(exchange, request, key, entry, req_cc, now, names)
            return
        if req_cc and self._refused(exchange, request, req_cc):
            return
        if key in self.pending and self._wait(key, exchange, request):
            return
        self.stats.misses += 1
        self._fetch(exchange, exchange, request, key, None, req_cc, now, names)

    def _refused(
        self, exchange: Exchange, request: Request, req_cc: Mapping[bytes, bytes | None]
    ) -> bool:
        """A miss the request's directives answer without a fetch that is stored."""
        if b"only-if-cached" in req_cc:  # RFC 9111 §5.2.1.7
            gateway_timeout(exchange, request)
            return True
        if b"no-store" in req_cc:  # §5.2.1.5: nothing of this exchange is stored
            self.stats.bypass += 1
            self.inner.handle(exchange, request)
            return True
        return False

    def _hit_from_file(self, exchange: Exchange, entry: Entry, method: bytes, now: float) -> bool:
        """The common hit (as in ``handle``) for a body kept in a file: False (nothing
        sent) if that file is no longer the entry's."""
        source = open_stored(entry, method)
        if source == GONE:
            return False
        self.stats.hits += 1
        age = entry.age(now)
        out = [*(entry.served or entry.serving()), (b"Age", b"%d" % age), HIT, *entry.length]
        exchange.response_start(entry.status, entry.phrase, out)
        send_stored(exchange, entry, source, 0, entry.body_size)
        return True

    def _other_method(self, exchange: Exchange, request: Request) -> None:
        """Neither GET nor HEAD: passed on; an unsafe method's answer invalidates (§4.4)."""
        self.stats.bypass += 1
        if request.method in _SAFE:
            self.inner.handle(exchange, request)
            return
        key = primary_key(request.scheme, request.headers, request.target)
        watcher = Invalidating(exchange, self, request, key)
        self.inner.handle(cast(Exchange, watcher), request)

    def _stored(
        self,
        exchange: Exchange,
        request: Request,
        key: bytes,
        entry: Entry,
        req_cc: Mapping[bytes, bytes | None],
        now: float,
        names: frozenset[bytes],
    ) -> None:
        """A stored response was selected: served, or validated (§4.2, §4.3)."""
        age = entry.age(now)
        decision = reuse(req_cc, entry.res_cc, entry.lifetime, age)
        if decision is _FRESH or decision is _STALE or decision is _SWR:
            self.stats.hits += 1
            asks = not names.isdisjoint(CONDITIONAL)
            serve(exchange, request, entry, age, b"hit", None, asks)
            if decision is _SWR and key not in self.pending:
                self._fetch(None, exchange, request, key, entry, req_cc, now)
            return
        if b"only-if-cached" in req_cc:
            gateway_timeout(exchange, request)
            return
        self._validate(exchange, request, key, entry, req_cc, now, names)

    def _validate(
        self,
        exchange: Exchange,
        request: Request,
        key: bytes,
        entry: Entry,
        req_cc: Mapping[bytes, bytes | None],
        now: float,
        names: frozenset[bytes],
    ) -> None:
        """Fetch with the stored response's validators (§4.3.1), or wait for the fetch in
        flight (when a popular response expires)."""
        if key in self.pending and self._wait(key, exchange, request):  # (no frame: none)
            return
        self.stats.stale += 1
        if names.isdisjoint(SPECIAL):  # (then no directives or conditionals to take out)
            self._fetch_plain(exchange, request, key, entry, now)
        else:
            self._fetch(exchange, exchange, request, key, entry, req_cc, now, names)

    def _range(
        self,
        exchange: Exchange,
        request: Request,
        key: bytes,
        entry: Entry | None,
        req_cc: Mapping[bytes, bytes | None],
        now: float,
        ranged: list[bytes],
    ) -> None:
        # A range is served from a complete stored 200, or from a stored part that holds
        # it; otherwise it is fetched with its Range (a single-part 206 is kept).
        if entry is not None and entry.status == 200 and self._usable(entry, req_cc, now):
            self.stats.hits += 1
            serve(exchange, request, entry, entry.age(now), b"hit", ranged)
            return
        part = self._select(key + PART, request.headers)
        if part is not None and self._usable(part, req_cc, now):
            held = part_range(part.fields(), ranged)
            if held is not None:
                self.stats.hits += 1
                serve_part(exchange, request, part, held, part.age(now))
                return
        if b"only-if-cached" in req_cc:
            gateway_timeout(exchange, request)
            return
        self.stats.misses += 1
        self._fetch(exchange, exchange, request, key, None, req_cc, now, ranged=True)

    def _wait(self, key: bytes, exchange: Exchange, request: Request) -> bool:
        """Collapsed forwarding: wait for the fetch in flight for ``key``, if any, and then
        look again (once: a request never waits twice)."""
        pending = self.pending.get(key)
        if pending is None or not self.settings.collapse or "thor.cache" in request.state:
            return False
        pending.waiters = [*pending.waiters, (exchange, request)]
        return True

    # --- reading the store ---------------------------------------------------------------

    def _select(
        self, key: bytes, headers: Headers, variants: Sequence[Entry] | None = None
    ) -> Entry | None:
        """The stored variant this request selects (RFC 9111 §4.1), the newest if several
        (of ``variants``, when the caller has them)."""
        best: Entry | None = None
        if variants is None:
            variants = self.store.variants(key)
        for entry in variants:
            if entry.vary and secondary_key(entry.vary, headers) != entry.secondary:
                continue
            if best is None or entry.response_time > best.response_time:
                best = entry
        if best is None:  # §4.1: a language the request would choose by its q-values
            for entry in variants:
                if entry.vary == _LANGUAGE and language_chosen(entry.fields(), headers):
                    return entry
        return best

    def _usable(self, entry: Entry, req_cc: Mapping[bytes, bytes | None], now: float) -> bool:
        decision = reuse(req_cc, entry.res_cc, entry.lifetime, entry.age(now))
        return decision is not Reuse.VALIDATE

    # --- going to the inner handler --------------------------------------------------------

    def _fetch(
        self,
        client: Exchange | None,
        origin: Exchange,
        request: Request,
        key: bytes,
        entry: Entry | None,
        req_cc: Mapping[bytes, bytes | None],
        now: float,
        names: frozenset[bytes] | None = None,
        ranged: bool = False,
    ) -> None:
        """Ask the inner handler (a miss, a validation, a refresh) for a request with some
        of the fields in SPECIAL (the others go to ``_fetch_plain``); ``now`` is when the
        request came, the request time of what it brings (RFC 9111 §4.2.3); ``names``: its
        lower-cased field names."""
        headers = [(n, v) for n, v in request.headers if n.lower() not in CONDITIONAL]
        asks = len(headers) != len(request.headers)  # the client's own conditionals
        authorized = None if names is None else b"authorization" in names
        asked = Asked(req_cc, ranged, asks, authorized)
        fetch = Fetch(self, key, client, request, entry, now, asked)
        if not ranged and key not in self.pending:  # a range waits for no one
            self.pending[key] = fetch
        self._hand_on(fetch, request, headers, origin)

    def _miss(self, exchange: Exchange, request: Request, key: bytes, now: float) -> None:
        """Nothing stored answers a request with none of the fields in SPECIAL: it is
        fetched, or waits for the fetch in flight."""
        if key in self.pending and self._wait(key, exchange, request):
            return
        self.stats.misses += 1
        self._fetch_plain(exchange, request, key, None, now)

    def _fetch_plain(
        self, exchange: Exchange, request: Request, key: bytes, entry: Entry | None, now: float
    ) -> None:
        """``_fetch`` for a request with none of the fields in SPECIAL (a miss, or a stored
        response to validate): its fields go as they are."""
        if request.method == _GET:
            fetch = Fetch(self, key, exchange, request, entry, now)
        else:  # a HEAD, fetched as the GET it stands for (its client gets the head alone)
            fetch = Fetch(self, key, exchange, request, entry, now, _PLAIN_HEAD)
        pending = self.pending
        if key not in pending:
            pending[key] = fetch
        self._hand_on(fetch, request, request.headers, exchange)

    def _hand_on(self, fetch: Fetch, request: Request, headers: Headers, origin: Exchange) -> None:
        """Give the inner handler ``fetch``'s request: ``headers``, then the cache's own
        fields (Surrogate-Capability, and the validators of the stored response the fetch
        validates, RFC 9111 §4.3.1), for the client of ``origin``."""
        entry = fetch.entry
        validators = None if entry is None else (entry.validators or entry.conditions())
        extra = [_CAPABILITY, *validators] if validators else _OWN
        try:
            relay = self._forward(fetch, request, headers, extra, origin)
            if not fetch.over:  # (an answer may come at once: then nothing more is said)
                fetch.upstream = relay
        except BaseException:
            fetch.over = True
            self.finished(fetch)  # the waiters must not wait for it
            raise

    def mark_pass(self, key: bytes, indexed: Fields, res_cc: Mapping[bytes, bytes | None]) -> None:
        """A response for ``key`` was not stored: pass the next plain GETs (passing.py)."""
        mark = pass_mark(indexed, res_cc)
        if mark is not None:
            self.remember_pass(key, mark)

    def remember_pass(self, key: bytes, mark: Mark) -> None:
        """Pass the next plain GETs for ``key`` while its Cache-Control is ``mark``."""
        if len(self.passes) >= _PASSES:
            self.passes.clear()  # (bounded: endless distinct URLs cost one store each)
        self.passes[key] = mark

    def finished(self, fetch: Fetch) -> None:
        """A fetch is over, or will store nothing: wake the requests that waited for it."""
        if self.pending.get(fetch.key) is fetch:
            del self.pending[fetch.key]
        waiters, fetch.waiters = fetch.waiters, ()
        for exchange, request in waiters:
            request.state["thor.cache"] = True  # collapse once: never wait twice
            self.handle(exchange, request)

    def invalidate(self, keys: list[bytes]) -> int:
        """Drop the stored responses (and parts) of ``keys``; how many."""
        return sum(self.store.remove(key) + self.store.remove(key + PART) for key in keys)


def _has_body(headers: Headers) -> bool:
    for name, value in headers:
        lname = name.lower()
        if lname == b"transfer-encoding" or (lname == b"content-length" and value.strip() != b"0"):
            return True
    return False
