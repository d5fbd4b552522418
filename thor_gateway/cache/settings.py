"""A cached route's settings (the keys of a ``[[proxy]]`` ``cache`` table) and counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["CacheSettings", "CacheStats", "cache_settings"]


@dataclass(slots=True)
class CacheSettings:
    """The settings of one route's cache (the keys of a ``[[proxy]]`` ``cache`` table)."""

    max_size: int = 64 << 20  # bytes the memory store may hold (bodies and headers)
    max_object_size: int = 8 << 20  # larger responses stream through uncached
    collapse: bool = True  # concurrent misses for one key wait for one fetch
    stale_on_disconnect: bool = False  # serve stale when the upstream cannot be reached
    dir: str | None = None  # a folder: the store is on disk (DiskStore), shared by workers

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
