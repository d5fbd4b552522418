"""Wakes a loop blocked in its selector, from any thread.

A non-blocking socket pair: :meth:`Waker.wake` writes one byte to one end,
which the loop watches for reading; :meth:`Waker.drain` empties it.  A socket
pair works with every selector on every platform (an eventfd would save one
descriptor on Linux only).  Writes that find the buffer full are dropped: a
full buffer already guarantees a wake-up.
"""

from __future__ import annotations

import socket

__all__ = ["Waker"]


class Waker:
    """A self-pipe made of a socket pair."""

    __slots__ = ("_reader", "_writer")

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def fileno(self) -> int:
        """The descriptor to watch for reading."""
        return self._reader.fileno()

    def wake(self) -> None:
        """Make the reading end readable.  Thread-safe and signal-safe."""
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full, so the loop will wake anyway
        except OSError:
            pass  # closed while the loop shuts down

    def drain(self) -> None:
        """Consume every pending wake-up byte."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Close both ends."""
        self._reader.close()
        self._writer.close()
