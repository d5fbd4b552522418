"""The client's exchange, watched for the answer to an unsafe request (RFC 9111 §4.4).

:class:`~thor_gateway.cache.handler.CacheHandler` hands it to the inner handler for a
method other than GET and HEAD: a non-error answer invalidates the stored responses of the
target (and of Location / Content-Location on the same host), and a POST response that
names its own URL, with explicit freshness, is kept for the GETs of that URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thor.http.headers import get_values
from thor_gateway.cache.fetch import Watching, as_bytes
from thor_gateway.cache.keys import invalidated, primary_key, secondary_key, vary_names
from thor_gateway.cache.rules import response_directives, storable
from thor_gateway.cache.store import Entry
from thor_gateway.routing.request import Request

if TYPE_CHECKING:
    from thor_gateway.cache.handler import CacheHandler

__all__ = ["Invalidating"]

Headers = list[tuple[bytes, bytes]]
_GET = b"GET"


_LOCATIONS = (b"location", b"content-location")


def _locations(headers: list[Any]) -> tuple[Headers, Headers]:
    """(the fields as bytes pairs, those of them called Location or Content-Location): the
    only fields §4.4 reads, found in one pass (most answers have neither).  A list of bytes
    pairs (the proxy's) is taken as it is."""
    located: Headers = []
    for pair in headers:
        name = pair[0]
        if name.__class__ is not bytes or pair[1].__class__ is not bytes:
            fields = [(as_bytes(n), as_bytes(v)) for n, v in headers]
            return fields, [(n, v) for n, v in fields if n.lower() in _LOCATIONS]
        if len(name) in (8, 16) and name.lower() in _LOCATIONS:
            located.append(pair)
    return headers, located


class Invalidating(Watching):
    """The client's exchange, watched for the status of an unsafe request (RFC 9111 §4.4).

    A POST response that names its own URL in Content-Location, with explicit freshness,
    is also what a GET of that URL would get (RFC 9110 §9.3.3): it is kept for them.
    """

    def __init__(self, exchange: Any, cache: CacheHandler, request: Request, key: bytes) -> None:
        Watching.__init__(self, exchange)
        self._cache = cache
        self._request = request
        self._key = key
        self._parts: list[bytes] | None = None
        self._head: tuple[int, bytes, Headers, float] | None = None
        self._size = 0
        self._sent = cache.clock()

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        headers = list(headers)
        fields, located = _locations(headers)
        code = int(status)
        request = self._request
        cache = self._cache
        cache.invalidate(invalidated(request.method, code, self._key, located))
        # (a POST answer is kept only if its Content-Location names its own URL)
        if located and request.method == b"POST" and self._reusable(code, fields):
            self._parts = []
            self._head = (code, as_bytes(phrase), fields, cache.clock())
        self._exchange.response_start(status, phrase, headers)

    def _reusable(self, code: int, fields: Headers) -> bool:
        res_cc = response_directives(fields)
        explicit = b"max-age" in res_cc or b"s-maxage" in res_cc or get_values(fields, b"expires")
        located = [
            primary_key(self._request.scheme, self._request.headers, v.strip())
            if v.strip()[:1] == b"/"
            else primary_key("http", [], v.strip())
            for v in get_values(fields, b"content-location")
        ]
        return (
            bool(explicit)
            and located == [self._key]
            and storable(_GET, code, self._request.headers, fields, None, res_cc)
        )

    def response_body(self, chunk: bytes) -> None:
        if self._parts is not None:
            self._size += len(chunk)
            if self._size > self._cache.settings.max_object_size:
                self._parts = None
            else:
                self._parts.append(chunk)
        self._exchange.response_body(chunk)

    def response_done(self, trailers: Any = None, close: bool = False) -> None:
        if self._parts is not None and self._head is not None:
            code, phrase, fields, received = self._head
            names = vary_names(fields)
            entry = Entry(
                self._key,
                names,
                secondary_key(names, self._request.headers),
                code,
                phrase,
                fields,
                b"".join(self._parts),
                self._sent,
                received,
            )
            self._cache.passes.pop(self._key, None)  # (a marked URL has nothing stored)
            if self._cache.store.put(entry):
                self._cache.stats.stored += 1
        self._parts = None
        self._exchange.response_done(trailers or [], close)
