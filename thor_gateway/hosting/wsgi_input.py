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
import sys
import threading
from collections import deque
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


class LazyCondition:
    """A lock whose :class:`threading.Condition` is made by the first :meth:`wait`.

    Hold ``lock`` around the shared state, and while calling :meth:`notify` or
    :meth:`wait`.  Most requests never wait (their body is all here, their
    response goes out in one piece), so most never pay for a Condition.
    """

    __slots__ = ("_cond", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._cond: threading.Condition | None = None

    def notify(self) -> None:
        if self._cond is not None:  # else nobody ever waited
            self._cond.notify()

    def wait(self, timeout: float) -> bool:
        cond = self._cond
        if cond is None:
            cond = self._cond = threading.Condition(self.lock)
        return cond.wait(timeout)


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
        self._sync = LazyCondition()
        # The body as it arrived, without copying: chunks, the first one read up to
        # _offset.  A whole chunk is handed to the app as it is (no copy at all).
        self._chunks: deque[bytes] = deque()
        self._offset = 0
        self._buffered = 0
        self._state = _State.OPEN
        self._error: BaseException | None = None
        self._paused = False
        self._resume_posted = False

    # ------------------------------------------------------------- loop thread

    def start_paused(self) -> None:
        """Pause the exchange's body until the app reads (loop thread, in request_start).

        For a request with ``Expect: 100-continue``: the server sends ``100 Continue``
        when the body is resumed, that is when the app first reads.  Other bodies flow
        into the buffer at once (up to ``high_water``), saving a thread hop per request.
        """
        self._paused = True
        self._pause_body(True)

    def feed(self, chunk: bytes) -> None:
        """A body chunk arrived (loop thread)."""
        with self._sync.lock:
            self._chunks.append(chunk)
            self._buffered += len(chunk)
            pause = not self._paused and self._buffered >= self.high_water
            if pause:
                self._paused = True
            self._sync.notify()
        if pause:
            self._pause_body(True)

    def finish(self, _trailers: object = None) -> None:
        """The body is complete (loop thread)."""
        with self._sync.lock:
            if self._state is _State.OPEN:
                self._state = _State.COMPLETE
            self._sync.notify()

    def fail(self, error: BaseException) -> None:
        """The body broke; later reads raise (loop thread).  A complete body stays readable."""
        with self._sync.lock:
            if self._state is _State.OPEN:
                self._state = _State.FAILED
                self._error = error
            self._sync.notify()

    def _resume(self) -> None:
        with self._sync.lock:
            self._resume_posted = False
            resume = (
                self._paused and self._state is _State.OPEN and self._buffered < self.high_water
            )
            if resume:
                self._paused = False
        if resume:
            self._pause_body(False)

    # ----------------------------------------------------------- worker thread

    def _wait_for_data(self) -> None:
        """Block until something is buffered or the body ended (lock held); raise if it broke."""
        waited = 0.0
        while not self._buffered and self._state is _State.OPEN:
            self._ask_for_more()
            if waited >= self._wait_limit:
                self._state = _State.FAILED
                self._error = TimeoutError("no request body progress")
                break
            step = min(1.0, self._wait_limit - waited)
            if not self._sync.wait(step):
                waited += step
        if not self._buffered and self._state is _State.FAILED:
            raise RequestBodyError(f"request body incomplete: {self._error}", self._error)

    def _ask_for_more(self) -> None:
        # Lock held.  One resume request in flight at a time.
        if self._paused and not self._resume_posted and self._buffered < self.low_water:
            self._resume_posted = True
            self._run_in_loop(self._resume)

    def _collect(self, size: int, line: bool) -> bytes:
        """Up to ``size`` bytes, stopping after a ``\\n`` if ``line``; blocks as a file does.

        What is buffered is taken as it comes, so that the buffer drains (and the
        body resumes) however much the app asked for.
        """
        parts: list[bytes] = []
        got = 0
        chunks = self._chunks
        with self._sync.lock:
            while got < size:
                if not chunks:
                    if self._state is _State.COMPLETE:
                        break
                    self._wait_for_data()
                    continue
                chunk = chunks[0]
                start = self._offset
                end = min(len(chunk), start + size - got)
                if line:
                    newline = chunk.find(b"\n", start, end)
                    if newline >= 0:
                        end = newline + 1
                part = chunk if start == 0 and end == len(chunk) else chunk[start:end]
                if end == len(chunk):
                    chunks.popleft()
                    self._offset = 0
                else:
                    self._offset = end
                self._buffered -= len(part)
                parts.append(part)
                got += len(part)
                self._ask_for_more()
                if line and part.endswith(b"\n"):
                    break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes, or fewer at the end (all that is left if ``size`` is None or < 0)."""
        if size is None or size < 0:
            return self._collect(sys.maxsize, line=False)
        return self._collect(size, line=False) if size else b""

    def readline(self, size: int | None = -1) -> bytes:
        """One line, with its ``\\n``; at most ``size`` bytes if that is given and >= 0."""
        if size is None or size < 0:
            return self._collect(sys.maxsize, line=True)
        return self._collect(size, line=True) if size else b""

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
