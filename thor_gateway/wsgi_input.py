"""``wsgi.input``: the request body, streamed from the loop thread to a worker thread.

Theory of operation: the loop thread :meth:`~BodyStream.feed`\\ s the chunks the
exchange emits into a bounded buffer; the worker thread reads from it and blocks
on a condition while it is empty.  Flow control works on the exchange
(``pause_request_body``) and so, through TCP's window, on the client:

- the stream starts *paused*, so that ``100 Continue`` goes out only when the app
  first reads (RFC 9110 §10.1.1: a server may omit it when it will not read the
  body; the server sends it on the first ``pause_request_body(False)``);
- above ``high_water`` buffered bytes the loop thread pauses the body;
- when a read has drained the buffer below ``low_water`` (or finds it empty), the
  worker asks the loop thread to resume, through ``loop.run_in_loop``: the worker
  never calls the exchange itself.

The body ends with :meth:`finish` (``request_done``) or :meth:`fail` (the
exchange's ``error``: the client cut the body short, a timeout, a size limit).
A failed body makes every later read raise :class:`RequestBodyError` (an
``OSError``), never return short data as if it were complete, so an app that
reads a truncated upload cannot answer 200 for it (servers.md Appendix B22/B23).
``wsgi.input_terminated`` is True: a read past the end returns ``b""``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["BodyStream", "EmptyBody", "RequestBodyError"]


class RequestBodyError(OSError):
    """The request body did not arrive whole; ``error`` is the server's HttpError, if any."""

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error


class _State(enum.Enum):
    OPEN = "open"  # more body may come
    COMPLETE = "complete"  # request_done seen: what is buffered is all
    FAILED = "failed"  # the body broke: reads raise


class EmptyBody:
    """``wsgi.input`` for a request without a body: no locks, no waiting."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


class BodyStream:
    """A request body that the loop thread fills and one worker thread reads."""

    high_water = 256 * 1024
    low_water = 64 * 1024

    def __init__(
        self,
        run_in_loop: Callable[..., Any],
        pause_body: Callable[[bool], None],
        wait_limit: float,
    ) -> None:
        self._run_in_loop = run_in_loop
        self._pause_body = pause_body
        # The server times out a stalled body (body_timeout) and fails the stream; the
        # worker's own limit only guards against that report never coming.
        self._wait_limit = wait_limit
        self._cond = threading.Condition(threading.Lock())
        self._buffer = bytearray()
        self._state = _State.OPEN
        self._error: BaseException | None = None
        self._paused = True  # the adapter pauses the body before the first read
        self._resume_posted = False

    # ------------------------------------------------------------- loop thread

    def start_paused(self) -> None:
        """Pause the exchange's body until the app reads (loop thread, in request_start)."""
        self._pause_body(True)

    def feed(self, chunk: bytes) -> None:
        """A body chunk arrived (loop thread)."""
        with self._cond:
            self._buffer += chunk
            pause = not self._paused and len(self._buffer) >= self.high_water
            if pause:
                self._paused = True
            self._cond.notify()
        if pause:
            self._pause_body(True)

    def finish(self, _trailers: object = None) -> None:
        """The body is complete (loop thread)."""
        with self._cond:
            if self._state is _State.OPEN:
                self._state = _State.COMPLETE
            self._cond.notify()

    def fail(self, error: BaseException) -> None:
        """The body broke; later reads raise (loop thread).  A complete body stays readable."""
        with self._cond:
            if self._state is _State.OPEN:
                self._state = _State.FAILED
                self._error = error
            self._cond.notify()

    def _resume(self) -> None:
        with self._cond:
            self._resume_posted = False
            resume = (
                self._paused and self._state is _State.OPEN and len(self._buffer) < self.high_water
            )
            if resume:
                self._paused = False
        if resume:
            self._pause_body(False)

    # ----------------------------------------------------------- worker thread

    def _wait(self, enough: Callable[[], bool]) -> None:
        """Block until ``enough()`` or the body ended (lock held)."""
        cond = self._cond
        waited = 0.0
        while not enough() and self._state is _State.OPEN:
            self._ask_for_more()
            if waited >= self._wait_limit:
                self._state = _State.FAILED
                self._error = TimeoutError("no request body progress")
                break
            step = min(1.0, self._wait_limit - waited)
            if not cond.wait(step):
                waited += step
        if self._state is _State.FAILED and not enough():
            raise RequestBodyError(f"request body incomplete: {self._error}", self._error)

    def _ask_for_more(self) -> None:
        # Lock held.  One resume request in flight at a time.
        if self._paused and not self._resume_posted and len(self._buffer) < self.low_water:
            self._resume_posted = True
            self._run_in_loop(self._resume)

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        if size >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:size])
            del buffer[:size]
        self._ask_for_more()
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left if ``size`` is None or negative).

        Blocks until ``size`` bytes are buffered or the body ended, as a file does.
        """
        with self._cond:
            if size is None or size < 0:
                self._wait(lambda: False)
                return self._take(len(self._buffer))
            if size == 0:
                return b""
            self._wait(lambda: len(self._buffer) >= size)
            return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, with its ``\\n``; at most ``size`` bytes if that is given and >= 0."""
        limit = -1 if size is None else size
        if limit == 0:
            return b""
        buffer = self._buffer

        def line_end() -> int:
            end = buffer.find(b"\n")
            if end >= 0:
                end += 1
            if limit > 0 and (end < 0 or end > limit) and len(buffer) >= limit:
                end = limit
            return end

        with self._cond:
            self._wait(lambda: line_end() >= 0)
            end = line_end()
            return self._take(end if end >= 0 else len(buffer))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Lines until the end, or until their total size reaches ``hint``."""
        lines: list[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line
