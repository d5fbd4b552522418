"""The HTTP cache (RFC 9111, shared): a handler that wraps another and answers from a store.

- :mod:`~thor_gateway.cache.rules`: storing, freshness, age and reuse, as pure functions;
- :mod:`~thor_gateway.cache.keys`: the cache key and Vary, 304 updates, invalidation,
  the client's conditionals, Cache-Status (RFC 9211);
- :mod:`~thor_gateway.cache.store`: the :class:`Store` interface and :class:`MemoryStore`;
- :mod:`~thor_gateway.cache.disk`: :class:`DiskStore`, on disk, shared by workers;
- :mod:`~thor_gateway.cache.answer`: answering from a stored response (its head, a 304,
  a range), and the 504 of ``only-if-cached``;
- :mod:`~thor_gateway.cache.body`: a stored body to the client, from memory or its file;
- :mod:`~thor_gateway.cache.handler`: :class:`CacheHandler`, which wraps a route's handler;
- :mod:`~thor_gateway.cache.settings`: :class:`CacheSettings` and :class:`CacheStats`;
- :mod:`~thor_gateway.cache.fetch`: where the wrapped handler's answer to a miss goes;
- :mod:`~thor_gateway.cache.inner`: how a fetch reaches the wrapped handler (the proxy's
  ``cache_fetch``, or an exchange that stands in for the client);
- :mod:`~thor_gateway.cache.heads`: a fetched response head's analysis, once per shape;
- :mod:`~thor_gateway.cache.passing`: a miss for a URL whose responses are not stored;
- :mod:`~thor_gateway.cache.purge`: ``POST /cache/purge`` for the metrics listener.

May import: Thor's public API, routing, operations, and static (a body kept in a file is
sent as a static file is: :func:`thor_gateway.static.body.send_pieces`).  It sits between
the router and what it wraps (the proxy, a mounted app) without importing either (a handler
whose class has ``cache_fetch``, as the proxy's does, relays a fetch itself); serving puts
it there.
See ``docs/cache.md``.
"""

from __future__ import annotations

from thor_gateway.cache.disk import DiskStore
from thor_gateway.cache.handler import CacheHandler
from thor_gateway.cache.settings import CacheSettings, CacheStats, cache_settings
from thor_gateway.cache.store import Entry, MemoryStore, Store

__all__ = [
    "CacheHandler",
    "CacheSettings",
    "CacheStats",
    "DiskStore",
    "Entry",
    "MemoryStore",
    "Store",
    "cache_settings",
]
