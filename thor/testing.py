"""Helpers for testing code that runs on a Thor loop."""

from __future__ import annotations

import thor.loop

__all__ = ["LoopTimeout", "run_for"]


class LoopTimeout(AssertionError):
    """The loop was still running at its deadline."""


def run_for(loop: thor.loop.Loop, seconds: float = 5.0) -> None:
    """Run ``loop`` until something stops it; raise :class:`LoopTimeout` after ``seconds``."""
    timed_out: list[bool] = []

    def deadline() -> None:
        timed_out.append(True)
        loop.stop()

    timer = loop.schedule(seconds, deadline)
    loop.run()
    timer.delete()
    if timed_out:
        raise LoopTimeout(f"the loop did not stop within {seconds}s")
