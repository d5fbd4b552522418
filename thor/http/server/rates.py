"""A minimum data rate, measured over windows (Kestrel's MinRequestBodyDataRate).

A client that sends a request body (or takes a response) one byte every few seconds makes
progress, so no stall timeout ever fires; the rate does. The connection measures bytes
moved over each window, the first being the grace period, and checks only when its timer
fires: data that moves in time costs nothing more.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RateWindow"]


class RateWindow:
    """Bytes moved since the window began; ``subject`` is what is measured (an exchange)."""

    __slots__ = ("moved", "since", "subject")

    def __init__(self) -> None:
        self.since = 0.0
        self.moved = 0
        self.subject: Any = None

    def start(self, now: float, moved: int, subject: Any = None) -> None:
        """Measure from ``now``, ``moved`` bytes having moved so far."""
        self.since = now
        self.moved = moved
        self.subject = subject

    def kept(self, now: float, rate: float, window: float, moved: int) -> bool:
        """Whether ``moved`` kept ``rate`` bytes/s since the window began; a window that is
        over starts again."""
        elapsed = now - self.since
        if elapsed < window:
            return True
        if moved - self.moved < rate * elapsed:
            return False
        self.since = now
        self.moved = moved
        return True
