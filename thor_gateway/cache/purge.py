"""``POST /cache/purge`` on the metrics listener: drop stored responses by URL or prefix.

``?url=http://host/path`` drops that URL's variants, ``?prefix=http://host/static/`` every
URL that starts with it; the URL is normalised as the cache keys it (scheme and authority
lower-cased).  The answer is JSON, ``{"purged": N}``.  Only the metrics listener serves it:
it is an operator's tool, not a client's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qs

from thor.http.exchange import Exchange
from thor_gateway.cache.handler import CacheHandler
from thor_gateway.cache.keys import primary_key
from thor_gateway.routing.request import Done, Request

__all__ = ["PurgeEndpoint"]


class PurgeEndpoint:
    """The handler of ``/cache/purge`` (see the module docstring)."""

    def __init__(self, caches: Sequence[CacheHandler]) -> None:
        self.caches = caches

    def handle(self, exchange: Exchange, request: Request) -> None:
        if request.method != b"POST":
            self._answer(exchange, 405, {"error": "use POST"}, [(b"Allow", b"POST")])
            return
        params = parse_qs(request.query.decode("latin-1"))
        url = params.get("url", [""])[0]
        prefix = params.get("prefix", [""])[0]
        if bool(url) == bool(prefix) or not (url or prefix).lower().startswith(
            ("http://", "https://")
        ):
            self._answer(exchange, 400, {"error": "give url=URL or prefix=URL (absolute)"})
            return
        key = primary_key("http", [], (url or prefix).encode("latin-1"))
        purged = sum(
            cache.invalidate([key]) if url else cache.store.purge(key) for cache in self.caches
        )
        self._answer(exchange, 200, {"purged": purged})

    def _answer(
        self,
        exchange: Exchange,
        status: int,
        doc: dict[str, object],
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps(doc).encode() + b"\n"
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"%d" % len(body)),
            *(extra or []),
        ]
        exchange.response_start(status, b"OK" if status == 200 else b"Refused", headers)
        exchange.response_body(body)
        exchange.response_done([])

    def startup(self, done: Done) -> None:
        done(None)

    def shutdown(self, done: Done) -> None:
        done(None)
