"""A log filter that summarises repeated lines: the first few through, then a count.

Theory of operation.  Under attack or saturation the same line repeats for every
request (a 503 for each refused request, a 408 for each cut body): hundreds a second,
which hide everything else and cost disk and CPU (issue 16, finding 5).  Records are
grouped by their logger, level and *template* (``record.msg`` before its arguments,
plus the exception type when there is one), so "503 for GET /a" and "503 for GET /b"
are the same kind.  In each ``interval`` the first ``burst`` records of a kind pass;
the rest are counted, and when the interval is over (at the next record of any kind,
or when the handler closes) one line reports them, the last one's text with
``[repeated N more times in S s]``.

There is no timer: a filter runs in whatever thread logs, so the summary is written
by the first record after the interval (or at exit); between floods nothing waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RepeatFilter", "SummarisingHandler"]

_Key = tuple[str, int, object, object]


class RepeatFilter(logging.Filter):
    """Pass ``burst`` records of each kind per ``interval`` seconds; summarise the rest."""

    def __init__(
        self,
        burst: int = 10,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self.emit_summary: Callable[[logging.LogRecord], object] | None = None
        self._lock = threading.Lock()
        self._since = clock()
        self._seen: dict[_Key, int] = {}
        self._last: dict[_Key, logging.LogRecord] = {}  # the last record held back, per kind

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "summary", False):
            return True
        exc = record.exc_info[0] if record.exc_info else None
        key = (record.name, record.levelno, record.msg, exc)
        now = self.clock()
        with self._lock:
            due = self._roll(now) if now - self._since >= self.interval else []
            seen = self._seen.get(key, 0) + 1
            self._seen[key] = seen
            passed = seen <= self.burst
            if not passed:
                self._last[key] = record
        for summary in due:
            self._report(summary)
        return passed

    def summaries(self) -> list[logging.LogRecord]:
        """End the interval now: the summary records of what was held back."""
        with self._lock:
            return self._roll(self.clock())

    def _roll(self, now: float) -> list[logging.LogRecord]:
        # Lock held.
        elapsed = now - self._since
        out = []
        for key, record in self._last.items():
            held = self._seen[key] - self.burst
            summary = logging.makeLogRecord(record.__dict__)
            summary.msg = f"{record.getMessage()} [repeated {held} more times in {elapsed:.0f} s]"
            summary.args = None
            summary.exc_info = summary.exc_text = None
            summary.summary = True
            out.append(summary)
        self._since = now
        self._seen = {}
        self._last = {}
        return out

    def _report(self, summary: logging.LogRecord) -> None:
        if self.emit_summary is not None:
            self.emit_summary(summary)


class SummarisingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler with a :class:`RepeatFilter`; what it holds back is reported
    at the next record after the interval, and when the handler closes (at exit)."""

    def __init__(self, stream: object = None, repeat: RepeatFilter | None = None) -> None:
        super().__init__(stream)
        self.repeat = repeat or RepeatFilter()
        summarise_repeats(self, self.repeat)


def summarise_repeats(handler: logging.StreamHandler, repeat: RepeatFilter) -> None:  # type: ignore[type-arg]
    """Give any stream handler (standard error, a watched file) ``repeat``'s filter: what it
    holds back is reported at the next record after the interval, and when the handler
    closes (at exit)."""
    repeat.emit_summary = handler.handle
    handler.addFilter(repeat)
    close = handler.close

    def close_with_summaries() -> None:
        for summary in repeat.summaries():
            handler.handle(summary)
        close()

    handler.close = close_with_summaries  # type: ignore[method-assign]
