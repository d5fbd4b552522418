"""A request body gathered on the loop thread before a WSGI app runs (request buffering).

Theory of operation.  A WSGI app reads ``wsgi.input`` in a worker thread, and a
worker that waits for a slow client's body is a thread nobody else can use: some
hundred clients each sending a byte now and then held every thread and the queue
(issue 16, finding 1).  So, by default, the body is received on the loop, as any
other socket work, and the app is submitted to the pool only when it is complete
(nginx's ``proxy_request_buffering``, waitress's ``inbuf_overflow``):

- the chunks the exchange emits are kept as they came (no copy) up to
  ``memory_limit`` bytes;
- past that, the body goes to an anonymous temporary file (``tempfile.TemporaryFile``:
  unlinked at creation, so nothing is left behind whatever happens), the chunks kept
  so far first; writing to it blocks the loop as a write to a page cache does,
  briefly;
- :meth:`SpooledBody.stream` then gives the app a file object positioned at the
  start: an ``io.BytesIO`` over the joined chunks, or the file itself.

A slow upload so costs its bytes in memory (or on disk), never a thread; what the
disk may hold is bounded by the server's ``max_body_size`` (413 beyond).  The
owner closes the body once: the worker after the app, or the loop thread if the
app never ran (the body broke, the client left, the pool was full).
"""

from __future__ import annotations

import io
import tempfile
from typing import IO

__all__ = ["SpooledBody"]


class SpooledBody:
    """The body of one request, in memory up to ``memory_limit`` bytes, then in a file."""

    __slots__ = ("_chunks", "_file", "memory_limit", "size")

    def __init__(self, memory_limit: int) -> None:
        self.memory_limit = memory_limit
        self.size = 0
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None

    @property
    def on_disk(self) -> bool:
        """Whether the body went past ``memory_limit`` into a temporary file."""
        return self._file is not None

    def feed(self, chunk: bytes) -> None:
        """A body chunk arrived (loop thread)."""
        self.size += len(chunk)
        spill = self._file
        if spill is not None:
            spill.write(chunk)
            return
        self._chunks.append(chunk)
        if self.size > self.memory_limit:
            spill = self._file = tempfile.TemporaryFile()  # noqa: SIM115 - kept open, closed by close()
            spill.writelines(self._chunks)
            self._chunks = []

    def stream(self) -> IO[bytes]:
        """The whole body as a file object at its start, for ``wsgi.input`` (loop thread,
        once the body is complete)."""
        spill = self._file
        if spill is not None:
            spill.flush()
            spill.seek(0)
            return spill
        chunks = self._chunks
        self._chunks = []
        return io.BytesIO(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        """Let go of the body (the temporary file is deleted as it closes)."""
        self._chunks = []
        spill = self._file
        if spill is not None:
            self._file = None
            spill.close()
