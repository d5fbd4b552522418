"""Flood defences counted in frames (CVE-2019-9512/9513/9514/9515/9518, CVE-2023-44487).

The core has no clock, so a *window* is a number of frames received: every
``defence_window_frames`` frames the counters start again.  Each kind of frame an attacker
can send cheaply and a server must answer or account for (RST_STREAM, SETTINGS, PING,
PRIORITY, WINDOW_UPDATE, frames without content) has its own limit per window; passing it
is a connection error ENHANCE_YOUR_CALM (RFC 9113 §5.4.1, §10.5).
"""

from __future__ import annotations

from thor.http2.protocol.errors import ErrorCode, H2ConnectionError
from thor.http2.protocol.settings import H2Config

__all__ = ["EMPTY", "PING_KIND", "PRIORITY_KIND", "RESET", "SETTINGS_KIND", "UPDATE", "FloodGuard"]

RESET, SETTINGS_KIND, PING_KIND, EMPTY, PRIORITY_KIND, UPDATE = range(6)
_NAMES = ("RST_STREAM", "SETTINGS", "PING", "empty", "PRIORITY", "WINDOW_UPDATE")


class FloodGuard:
    """Counters per kind, reset every ``window`` frames."""

    __slots__ = ("counts", "frames", "limits", "window")

    def __init__(self, config: H2Config) -> None:
        self.window = config.defence_window_frames
        self.limits = (
            config.max_resets_per_window,
            config.max_settings_per_window,
            config.max_pings_per_window,
            config.max_empty_frames_per_window,
            config.max_priority_per_window,
            config.max_window_updates_per_window,
        )
        self.counts = [0] * len(self.limits)
        self.frames = 0

    def tick(self) -> None:
        """One frame received."""
        self.frames += 1
        if self.frames >= self.window:
            self.frames = 0
            self.counts = [0] * len(self.limits)

    def count(self, kind: int) -> None:
        self.counts[kind] += 1
        if self.counts[kind] > self.limits[kind]:
            raise H2ConnectionError(
                f"more than {self.limits[kind]} {_NAMES[kind]} frames in {self.window} (§10.5)",
                ErrorCode.ENHANCE_YOUR_CALM,
            )
