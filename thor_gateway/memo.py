"""A bounded memo of converted inputs: the encoded form of a status line or header list.

Apps answer with the same few statuses and header lists again and again, so the
adapters keep the converted (validated and encoded) form of each valid one, keyed by
its value.  Only valid input is stored.  A memo that fills up (inputs that vary per
response) is emptied and starts again, so it never grows past ``size``.  Plain dict
operations: threads may share a memo under the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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

    def put(self, key: K, value: V) -> None:
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
