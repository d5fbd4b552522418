"""The event loop: file descriptors, timers and calls from other threads.

Theory of operation (after asyncio's ``_run_once``): each iteration

1. computes how long it may sleep: zero if calls are ready, else until the
   earliest timer (no grid: a timer fires as soon as it is due), else forever;
2. waits on the selector (epoll, kqueue, poll, select: whatever
   :class:`selectors.DefaultSelector` picks) and calls the reader and writer
   callbacks of the ready file descriptors at once;
3. moves the due timers to the ready queue and runs the ready queue, which
   also holds calls posted from other threads by :meth:`Loop.run_in_loop`.

Every callback runs through one place that catches its exception, logs it
with its traceback and carries on (``loop.fatal_errors = True`` re-raises it
instead, for debugging).

Timers live on a heap; a deleted timer is only marked, and the heap is rebuilt
once most of it is dead (lazy cancellation keeps ``delete`` O(1)).

Calls from other threads wake the loop through a socket pair (see
:mod:`thor._waker`); one byte is written per batch, not per call, so a busy
thread pool costs one wake-up per loop iteration at most.

Only :meth:`Loop.run_in_loop` may be called from another thread.
"""

from __future__ import annotations

import atexit
import contextlib
import heapq
import logging
import selectors
import signal
import time as _time
from collections import deque
from collections.abc import Callable
from typing import Any

from thor._waker import Waker
from thor.events import EventEmitter

__all__ = [
    "Loop",
    "ScheduledEvent",
    "default",
    "make",
    "run",
    "run_in_loop",
    "schedule",
    "stop",
    "time",
]

log = logging.getLogger("thor.loop")

Callback = Callable[..., Any]
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
# Rebuild the timer heap when more than this many entries are deleted ones
# and they are the majority.
_MIN_DEAD_TIMERS = 100


class ScheduledEvent:
    """A call scheduled with :meth:`Loop.schedule`; ``delete()`` cancels it."""

    __slots__ = ("_loop", "args", "callback", "when")

    def __init__(self, loop: Loop, when: float, callback: Callback, args: tuple[Any, ...]):
        self._loop: Loop | None = loop
        self.when = when
        self.callback: Callback | None = callback
        self.args = args

    def delete(self) -> None:
        """Cancel the call if it has not run yet; calling it again does nothing."""
        if self.callback is not None:
            self.callback = None
            self.args = ()
            loop = self._loop
            if loop is not None:
                self._loop = None
                loop._timer_deleted()

    @property
    def fired(self) -> bool:
        """True once the call has run or been deleted."""
        return self.callback is None

    def __lt__(self, other: ScheduledEvent) -> bool:
        return self.when < other.when


class Loop(EventEmitter):
    """An event loop.  Events: ``start`` (before the first iteration), ``stop``."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__()
        self._selector = selector if selector is not None else selectors.DefaultSelector()
        self._ready: deque[tuple[Callback, tuple[Any, ...]]] = deque()
        self._threadsafe: deque[tuple[Callback, tuple[Any, ...]]] = deque()
        self._timers: list[tuple[float, int, ScheduledEvent]] = []
        self._timer_seq = 0
        self._dead_timers = 0
        # fd -> [reader, writer]; the selector's own data is not used, so that
        # a handler removed during a batch of events is never called.
        self._handlers: dict[int, list[Callback | None]] = {}
        self._waker = Waker()
        self._waker_pending = False
        self.running = False
        self._stopping = False
        self.fatal_errors = False
        self.time = _time.monotonic
        self._set_handlers(self._waker.fileno(), reader=self._on_wake)

    # ----------------------------------------------------------------- running

    def run(self) -> None:
        """Run until :meth:`stop` is called."""
        if self.running:
            raise RuntimeError("this loop is already running")
        self.running = True
        self._stopping = False
        try:
            self.emit("start")
            while not self._stopping:
                self._run_once()
        finally:
            self.running = False

    def stop(self) -> None:
        """Make :meth:`run` return after the current iteration; emits ``stop``."""
        self._stopping = True
        self.emit("stop")

    def after_fork(self) -> None:
        """In a child process after ``os.fork()``: give the loop a selector and waker of its own.

        An epoll instance (and the waker's socket pair) is shared with the parent across
        a fork, so the child must not wait on it.  The loop stays the same object, so
        what was bound to it before the fork (a module-level ``HttpClient``, a proxy built
        when its module was imported) keeps working; its timers, pending calls and
        watched descriptors carry over to the new selector.
        """
        old_selector, old_waker = self._selector, self._waker
        watched = [
            (fd, reader, writer)
            for fd, (reader, writer) in self._handlers.items()
            if fd != old_waker.fileno()
        ]
        self._selector = type(old_selector)()
        self._handlers = {}
        self._waker = Waker()
        self._waker_pending = False
        self._set_handlers(self._waker.fileno(), reader=self._on_wake)
        for fd, reader, writer in watched:
            self._set_handlers(fd, reader=reader, writer=writer)
        old_waker.close()  # this process's copies only; the parent keeps its own
        with contextlib.suppress(OSError):  # a kqueue is not inherited: nothing to close
            old_selector.close()

    def close(self) -> None:
        """Release the selector and the waker; the loop cannot run again."""
        self._handlers.clear()
        self._selector.close()
        self._waker.close()

    def _run_once(self) -> None:
        ready = self._ready
        if ready or self._threadsafe or self._stopping:
            timeout: float | None = 0.0
        elif self._timers:
            timeout = max(0.0, self._timers[0][0] - self.time())
        else:
            timeout = None
        self._dispatch(self._selector.select(timeout))
        if self._timers:
            self._collect_due_timers()
        threadsafe = self._threadsafe
        while threadsafe:
            ready.append(threadsafe.popleft())
        # Calls made ready by this batch wait for the next iteration, so that
        # a callback that keeps re-posting itself cannot starve the selector.
        for _ in range(len(ready)):
            callback, args = ready.popleft()
            try:
                callback(*args)
            except Exception:
                self._callback_failed(callback)

    def _dispatch(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        handlers = self._handlers
        for key, mask in events:
            # Look the handlers up now rather than keep them in key.data: an
            # earlier callback of this batch may have removed them.
            fd = key.fd
            pair = handlers.get(fd)
            if pair is None:
                continue
            if mask & _READ and pair[0] is not None:
                try:
                    pair[0]()
                except Exception:
                    self._callback_failed(pair[0])
                if mask & _WRITE:
                    pair = handlers.get(fd)
                    if pair is None:
                        continue
            if mask & _WRITE and pair[1] is not None:
                try:
                    pair[1]()
                except Exception:
                    self._callback_failed(pair[1])

    def _collect_due_timers(self) -> None:
        timers = self._timers
        ready = self._ready
        now = self.time()
        while timers and timers[0][0] <= now:
            event = heapq.heappop(timers)[2]
            callback = event.callback
            if callback is None:
                self._dead_timers -= 1
            else:
                args = event.args
                event.callback = None
                event._loop = None
                ready.append((callback, args))

    def _callback_failed(self, callback: Callback) -> None:
        """Log the exception being handled (or re-raise it with ``fatal_errors``)."""
        if self.fatal_errors:
            raise  # re-raises the exception being handled by our caller
        log.exception("exception in callback %r", callback)

    # ------------------------------------------------------------------ timers

    def schedule(self, delta: float, callback: Callback, *args: Any) -> ScheduledEvent:
        """Call ``callback(*args)`` in ``delta`` seconds; returns a handle with ``delete()``."""
        if delta < 0:
            raise ValueError("cannot schedule in the past")
        event = ScheduledEvent(self, self.time() + delta, callback, args)
        self._timer_seq += 1
        heapq.heappush(self._timers, (event.when, self._timer_seq, event))
        return event

    def call_soon(self, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` on the next iteration (loop thread only)."""
        self._ready.append((callback, args))

    def _timer_deleted(self) -> None:
        self._dead_timers += 1
        dead = self._dead_timers
        if dead > _MIN_DEAD_TIMERS and dead * 2 > len(self._timers):
            # In place: _run_once may hold a reference to the list.
            self._timers[:] = [t for t in self._timers if t[2].callback is not None]
            heapq.heapify(self._timers)
            self._dead_timers = 0

    def scheduled_events(self) -> list[tuple[float, Callback]]:
        """(seconds from now, callback) for every pending timer, soonest first."""
        now = self.time()
        return [
            (when - now, event.callback)
            for when, _, event in sorted(self._timers)
            if event.callback is not None
        ]

    # --------------------------------------------------------- other threads

    def run_in_loop(self, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` on the loop thread soon.  Thread-safe."""
        self._threadsafe.append((callback, args))
        self.wake()

    def post(self, callback: Callback, *args: Any) -> None:
        """Queue ``callback(*args)`` for the loop thread WITHOUT waking it.  Thread-safe.

        The call runs at the loop's next iteration, which the caller must make
        sure comes: a later :meth:`wake` or :meth:`run_in_loop`, or a timer.  A
        thread that produces results in bursts posts them and wakes the loop
        once at the end of the burst: every wake-up is a system call and, in
        CPython, a switch of the GIL between threads.
        """
        self._threadsafe.append((callback, args))

    def wake(self) -> None:
        """Make the loop run an iteration soon, for calls queued by :meth:`post`.  Thread-safe."""
        # One wake-up byte per batch: the loop clears the flag before it drains the queue,
        # so an append seen with the flag set is always drained by the iteration that will
        # clear it.
        if not self._waker_pending:
            self._waker_pending = True
            self._waker.wake()

    def _on_wake(self) -> None:
        # Drain first, then clear the flag: cleared first, a thread could set
        # it and write its byte in between, the drain would eat that byte and
        # the flag would stay set with nothing left to wake the loop.  Calls
        # appended before the flag is cleared are run later in this iteration.
        self._waker.drain()
        self._waker_pending = False

    # -------------------------------------------------------------- signals

    def add_signal_handler(self, signum: int, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread when ``signum`` arrives.

        Python runs signal handlers on the main thread, between bytecodes; the
        handler only posts the call to the loop, which wakes at once.
        """

        def handler(_signum: int, _frame: object) -> None:
            self.run_in_loop(callback, *args)

        signal.signal(signum, handler)

    def remove_signal_handler(self, signum: int) -> None:
        """Restore the default disposition of ``signum``."""
        signal.signal(signum, signal.SIG_DFL)

    # ------------------------------------------------------ file descriptors

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is readable."""
        self._set_handlers(fd, reader=callback)

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` for reading."""
        self._set_handlers(fd, reader=None)

    def add_writer(self, fd: int, callback: Callback) -> None:
        """Call ``callback()`` whenever ``fd`` is writable."""
        self._set_handlers(fd, writer=callback)

    def remove_writer(self, fd: int) -> None:
        """Stop watching ``fd`` for writing."""
        self._set_handlers(fd, writer=None)

    _KEEP: Any = object()

    def _set_handlers(self, fd: int, reader: Any = _KEEP, writer: Any = _KEEP) -> None:
        handlers = self._handlers
        pair = handlers.get(fd)
        if pair is None:
            if reader is Loop._KEEP:
                reader = None
            if writer is Loop._KEEP:
                writer = None
            if reader is None and writer is None:
                return
            mask = (_READ if reader is not None else 0) | (_WRITE if writer is not None else 0)
            self._selector.register(fd, mask, None)
            handlers[fd] = [reader, writer]
            return
        old_mask = (_READ if pair[0] is not None else 0) | (_WRITE if pair[1] is not None else 0)
        if reader is not Loop._KEEP:
            pair[0] = reader
        if writer is not Loop._KEEP:
            pair[1] = writer
        mask = (_READ if pair[0] is not None else 0) | (_WRITE if pair[1] is not None else 0)
        if mask == old_mask:
            return  # only a callback changed: no system call
        if mask:
            self._selector.modify(fd, mask, None)
        else:
            del handlers[fd]
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass  # the descriptor was closed first; epoll dropped it already

    def fd_count(self) -> int:
        """How many file descriptors are watched (the waker excluded)."""
        return len(self._handlers) - 1


def make() -> Loop:
    """A new loop, independent of the default one."""
    return Loop()


_default: Loop | None = None


def default() -> Loop:
    """The default loop: the one that :func:`run`, :func:`schedule` and every object built
    without ``loop=`` use.  It is made on first use, so importing Thor opens no descriptor.
    """
    global _default
    the_loop = _default
    if the_loop is None:
        the_loop = _default = Loop()
        # Close its selector and waker at exit rather than leave them to the garbage
        # collector (which warns about unclosed sockets).
        atexit.register(the_loop.close)
    return the_loop


def __getattr__(name: str) -> Any:
    # Thor 0.17's name for the default loop, kept as an alias: ``thor.loop._loop``.
    if name == "_loop":
        return default()
    raise AttributeError(f"module 'thor.loop' has no attribute {name!r}")


def run() -> None:
    """Run the default loop until :func:`stop`."""
    default().run()


def stop() -> None:
    """Stop the default loop."""
    default().stop()


def schedule(delta: float, callback: Callback, *args: Any) -> ScheduledEvent:
    """Schedule a call on the default loop."""
    return default().schedule(delta, callback, *args)


def run_in_loop(callback: Callback, *args: Any) -> None:
    """Post a call to the default loop from any thread."""
    default().run_in_loop(callback, *args)


def time() -> float:
    """The default loop's clock: monotonic seconds."""
    return default().time()
