"""A Thor loop driven by an asyncio event loop, on the same thread.

Thor's own :class:`~thor.loop.Loop` is the default and the fastest for Thor
code alone.  When Thor code shares a process with asyncio code that must run
on the same thread (thor-gateway serving ASGI apps: the app's coroutines and
the HTTP server then trade events without crossing threads), an
:class:`AsyncioLoop` offers the same interface on top of an asyncio loop:
file descriptors, timers and calls become the asyncio loop's, and
``run()`` runs it.

Exceptions in callbacks are logged by asyncio's exception handler and the
loop goes on, as with Thor's loop.  ``run_in_loop`` stays thread-safe; called
on the loop's own thread it costs a plain ``call_soon``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

from thor.events import EventEmitter
from thor.loop import Callback, Loop, ScheduledEvent

__all__ = ["AsyncioLoop"]


class AsyncioLoop(Loop):
    """The :class:`~thor.loop.Loop` interface over ``aloop`` (a new asyncio loop by default)."""

    def __init__(self, aloop: asyncio.AbstractEventLoop | None = None) -> None:
        EventEmitter.__init__(self)  # not Loop.__init__: no selector or waker of its own
        self.aloop = aloop if aloop is not None else asyncio.new_event_loop()
        self.running = False
        self.fatal_errors = False
        self.time = self.aloop.time
        self._thread: int | None = None
        self._fds: dict[int, list[Callback | None]] = {}

    def run(self) -> None:
        """Run the asyncio loop until :meth:`stop`."""
        if self.running:
            raise RuntimeError("this loop is already running")
        self.running = True
        self._thread = threading.get_ident()
        asyncio.set_event_loop(self.aloop)
        try:
            self.emit("start")
            self.aloop.run_forever()
        finally:
            self.running = False
            self._thread = None

    def stop(self) -> None:
        """Make :meth:`run` return; emits ``stop``."""
        self.aloop.stop()
        self.emit("stop")

    def close(self) -> None:
        """Close the asyncio loop."""
        if not self.aloop.is_closed():
            self.aloop.close()

    def schedule(self, delta: float, callback: Callback, *args: Any) -> ScheduledEvent:
        """Call ``callback(*args)`` in ``delta`` seconds; ``delete()`` cancels it."""
        if delta < 0:
            raise ValueError("cannot schedule in the past")
        event = ScheduledEvent(self, self.time() + delta, callback, args)
        self.aloop.call_at(event.when, _fire, event)
        return event

    def _timer_deleted(self) -> None:
        pass  # the asyncio handle finds the event deleted when it fires

    def call_soon(self, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` soon (loop thread only)."""
        self.aloop.call_soon(callback, *args)

    def run_in_loop(self, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` on the loop thread soon.  Thread-safe."""
        if self._thread == threading.get_ident():
            self.aloop.call_soon(callback, *args)
        else:
            self.aloop.call_soon_threadsafe(callback, *args)

    def add_signal_handler(self, signum: int, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread when ``signum`` arrives."""
        self.aloop.add_signal_handler(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> None:
        """Forget the handler of ``signum``."""
        self.aloop.remove_signal_handler(signum)
        signal.signal(signum, signal.SIG_DFL)

    def _set_handlers(self, fd: int, reader: Any = Loop._KEEP, writer: Any = Loop._KEEP) -> None:
        pair = self._fds.setdefault(fd, [None, None])
        if reader is not Loop._KEEP and reader != pair[0]:
            pair[0] = reader
            if reader is None:
                self.aloop.remove_reader(fd)
            else:
                self.aloop.add_reader(fd, reader)
        if writer is not Loop._KEEP and writer != pair[1]:
            pair[1] = writer
            if writer is None:
                self.aloop.remove_writer(fd)
            else:
                self.aloop.add_writer(fd, writer)
        if pair[0] is None and pair[1] is None:
            del self._fds[fd]

    def fd_count(self) -> int:
        """How many file descriptors are watched."""
        return len(self._fds)

    def post(self, callback: Callback, *args: Any) -> None:
        """Like :meth:`run_in_loop`: asyncio has no quiet hand-off, so this wakes the loop."""
        self.run_in_loop(callback, *args)

    def wake(self) -> None:
        """Nothing to do: :meth:`post` already woke the loop."""

    def scheduled_events(self) -> list[tuple[float, Callback]]:
        """Not tracked on an asyncio loop: always empty."""
        return []


def _fire(event: ScheduledEvent) -> None:
    callback = event.callback
    if callback is not None:
        args = event.args
        event.callback = None
        event._loop = None
        callback(*args)
