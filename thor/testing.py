"""Helpers for testing code that runs on a Thor loop.

- :func:`run_for` runs a loop on this thread until something stops it, and
  fails if that takes longer than a deadline.
- :func:`loop_in_thread` runs a loop on a background thread for the duration
  of a ``with`` block, and stops it (through :meth:`Loop.run_in_loop`, the
  only thread-safe call) at the end, with a deadline.
- :class:`FakeClock` replaces a loop's clock, so that timers can be tested
  without waiting: ``clock.advance(30)`` makes 30 seconds pass at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import thor.loop

__all__ = ["FakeClock", "LoopTimeout", "loop_in_thread", "run_for"]


class LoopTimeout(AssertionError):
    """The loop was still running at its deadline."""


def run_for(loop: thor.loop.Loop, seconds: float = 5.0) -> None:
    """Run ``loop`` until something stops it; raise :class:`LoopTimeout` after ``seconds``."""
    timed_out: list[bool] = []

    def deadline() -> None:
        timed_out.append(True)
        loop.stop()

    timer = loop.schedule(seconds, deadline)
    try:
        loop.run()
    finally:
        timer.delete()
    if timed_out:
        raise LoopTimeout(f"the loop did not stop within {seconds}s")


@contextmanager
def loop_in_thread(
    loop: thor.loop.Loop | None = None, stop_timeout: float = 5.0
) -> Iterator[thor.loop.Loop]:
    """Run ``loop`` (a new one by default) on a daemon thread inside the block.

    Talk to it from the block with ``loop.run_in_loop`` only.  At the end the
    loop is stopped and the thread joined; :class:`LoopTimeout` if it does not
    stop within ``stop_timeout`` seconds.  A new loop is also closed.
    """
    the_loop = loop if loop is not None else thor.loop.make()
    started = threading.Event()
    the_loop.on("start", started.set)
    thread = threading.Thread(target=the_loop.run, name="thor-loop", daemon=True)
    thread.start()
    try:
        if not started.wait(stop_timeout):
            raise LoopTimeout("the loop thread did not start")
        yield the_loop
    finally:
        the_loop.remove_listener("start", started.set)
        the_loop.run_in_loop(the_loop.stop)
        thread.join(stop_timeout)
        if thread.is_alive():
            raise LoopTimeout(f"the loop thread did not stop within {stop_timeout}s")
        if loop is None:
            the_loop.close()


class FakeClock:
    """A clock that moves only when told to.  ``FakeClock(loop)`` installs it.

    Timers then fire when :meth:`advance` has moved the clock past them and
    the loop runs an iteration (``advance`` wakes it through the thread-safe
    door, so it works with a loop on another thread as well).
    """

    def __init__(self, loop: thor.loop.Loop, start: float = 0.0) -> None:
        self.now = start
        self._loop = loop
        loop.time = self

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake the loop."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self.now += seconds
        self._loop.run_in_loop(lambda: None)
