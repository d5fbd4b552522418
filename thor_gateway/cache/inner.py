"""How a fetch reaches the inner handler: the proxy's own call, or a stand-in exchange.

A proxy route's handler forwards a cache's request itself (``cache_fetch``: a GET with the
cache's header list, its response relayed straight into the :class:`~.fetch.Fetch`, and
nothing listened to on an exchange; ``cache_pass``: a passed GET with the cache's own fields,
on the client's own exchange, its response head's fields relayed through
:meth:`~.passing.Pass.relayed`, the request not copied).  Any other handler (a
mounted app, a handler of one's own) gets a :class:`FetchExchange`: an exchange whose
request is complete at once (``request_done`` follows ``handle``), whose client pauses and
leaves like the real one, and whose response calls go to the fetch, their status, phrase and
fields made bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thor.events import EventEmitter
from thor.http.exchange import Exchange
from thor_gateway.cache.fetch import Fetch, Relay, StandIn, as_bytes
from thor_gateway.cache.passing import Passing, Relayed
from thor_gateway.routing.request import Request

if TYPE_CHECKING:
    from thor_gateway.routing.request import Handler

__all__ = ["FetchExchange", "forwarder", "passer", "upstream_request"]

Headers = list[tuple[bytes, bytes]]
# Handing on: (fetch, request, the request's fields to send, the cache's own fields to add,
# the exchange that asked) -> relay
Forward = Callable[[Fetch, Request, Headers, Headers, Exchange], Relay]
# Passing on (passing.py): (the client's exchange, the request, the cache's own fields to
# add, what the response head's fields go through) -> None
PassOn = Callable[[Exchange, Request, Headers, Relayed], None]
_GET = b"GET"


def forwarder(inner: Handler) -> Forward:
    """How ``inner`` is asked for a cache's request: its ``cache_fetch`` if its class has
    one (the proxy's: looked up on the class, so that a wrapper that passes attributes on,
    such as a request deadline, is not bypassed), else through a :class:`FetchExchange`."""
    if getattr(type(inner), "cache_fetch", None) is not None:
        return inner.cache_fetch  # type: ignore[attr-defined,no-any-return]

    def forward(
        fetch: Fetch, request: Request, headers: Headers, extra: Headers, origin: Exchange
    ) -> Relay:
        exchange = FetchExchange(fetch, origin)
        fetch.upstream = exchange  # (an answer during handle may find the client gone)
        upstream = upstream_request(request, [*headers, *extra])
        inner.handle(exchange, upstream)  # type: ignore[arg-type]
        exchange.emit("request_done", [])
        return exchange

    return forward


def passer(inner: Handler) -> PassOn:
    """How ``inner`` is handed a GET the cache passes by: its ``cache_pass`` if its class has
    one (the proxy's: it relays the head's fields through ``Pass.relayed``), else its
    ``handle``, on a :class:`~.passing.Passing` exchange, with a copy of the request with
    the fields added."""
    if getattr(type(inner), "cache_pass", None) is not None:
        return inner.cache_pass  # type: ignore[attr-defined,no-any-return]

    def pass_on(exchange: Exchange, request: Request, extra: Headers, relayed: Relayed) -> None:
        upstream = upstream_request(request, [*request.headers, *extra])
        inner.handle(Passing(exchange, relayed), upstream)  # type: ignore[arg-type]

    return pass_on


def upstream_request(r: Request, headers: Headers) -> Request:
    """What goes to the inner handler: a GET (a HEAD goes as the GET it stands for, whose
    answer fills the store) with ``headers`` (dataclasses.replace, without its generic
    work per call)."""
    return Request(
        _GET,
        r.target,
        r.raw_path,
        r.query,
        r.script_name,
        r.path_info,
        headers,
        r.http_version,
        r.scheme,
        r.client,
        r.server,
        r.state,
    )


class FetchExchange(StandIn, EventEmitter):
    """The exchange an inner handler other than the proxy answers a fetch on."""

    def __init__(self, fetch: Fetch, origin: Exchange) -> None:
        EventEmitter.__init__(self)
        self.fetch = fetch
        self._exchange = origin  # what it does not answer itself (loop, addresses, scheme)

    # The request: complete at once, no body.
    req_complete = True
    req_body_bytes = 0
    cx = None  # (Relay: no HTTP client exchange; the handler's head comes as a list)

    @property
    def started(self) -> bool:
        return self.fetch.started

    def pause_request_body(self, paused: bool) -> None:
        pass  # the cache sends no request body

    def set_write_buffer_limit(self, limit: int) -> None:
        self.fetch.set_write_buffer_limit(limit)

    # --- what the fetch tells the handler (Relay) --------------------------------------------

    def client_paused(self, paused: bool) -> None:
        self.emit("pause", paused)

    def cancel(self) -> None:
        self.emit("done", False)  # the handler's 'done' listener cancels its work
        self.forget_listeners()

    # --- the response, to the fetch --------------------------------------------------------

    def response_nonfinal(self, status: Any, phrase: Any, headers: Any = ()) -> None:
        pass  # interim responses are not relayed through the cache

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        fields = [(as_bytes(n), as_bytes(v)) for n, v in headers]
        self.fetch.response_start(int(status), as_bytes(phrase), fields)

    def response_body(self, chunk: bytes) -> None:
        self.fetch.response_body(chunk)

    def response_done(self, trailers: Any = None, close: bool = False) -> None:
        if self.fetch.over:
            return
        self.fetch.response_done()
        self.emit("done", True)
        # The handler's listeners refer back to this exchange (as it to them): dropped, the
        # two are freed by their counts, not left in a cycle for the collector.
        self.forget_listeners()

    def respond(self, status: Any, phrase: Any, headers: Any, body: bytes = b"") -> None:
        self.response_start(status, phrase, headers)
        if body:
            self.response_body(body)
        self.response_done()

    def abort(self) -> None:
        self.fetch.abort()
        self.forget_listeners()
