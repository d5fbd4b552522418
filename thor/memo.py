"""A bounded memo of what was worked out from an input seen before.

Servers and clients meet the same few inputs again and again: status lines, header
lists and names, URLs, client addresses.  The code that parses or validates them keeps
each valid result here, keyed by its input, and looks it up first.  Only valid input is
stored.  A memo that fills up (inputs that vary every time) is emptied and starts again,
so it never grows past ``size``: endless distinct inputs cost one dict store each.  Plain
dict operations: threads may share a memo under the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Memo"]

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most ``size`` remembered ``key -> value`` pairs."""

    __slots__ = ("_known", "get", "size")

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._known: dict[K, V] = {}
        # The dict's own get (C, no Python frame): put() clears the dict, never replaces it.
        self.get: Callable[[K], V | None] = self._known.get

    def __len__(self) -> int:
        return len(self._known)

    def __iter__(self) -> Iterator[K]:
        return iter(self._known)

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` for ``key`` (forgetting everything first when full)."""
        known = self._known
        if len(known) >= self.size:
            known.clear()
        known[key] = value

    def lookup_items(self, items: Iterable[object]) -> tuple[K | None, V | None]:
        """(key, remembered value) for a list's items; (None, None) if one is unhashable."""
        key = tuple(items)
        try:
            return key, self._known.get(key)  # type: ignore[arg-type,return-value]
        except TypeError:  # e.g. a [name, value] list: checked by the caller, never stored
            return None, None
