"""Static files, the bytes: a response body from an open file, by sendfile or by reads.

:func:`send_pieces` sends a body made of *pieces*: literal bytes (multipart boundaries and
part heads) and ``(offset, count)`` spans of the open file.  It queues the spans with the
exchange's ``response_file`` (``os.sendfile``: the kernel copies, nothing in memory) where
the exchange offers it and the connection can (not TLS); otherwise a :class:`FileSender`
reads them with ``os.pread``, 64 KiB at a time, as the client drains: at most
:data:`TURN_BUDGET` bytes per loop iteration, and nothing while the exchange is paused.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import deque
from typing import Any

__all__ = ["CHUNK", "TURN_BUDGET", "FileSender", "Piece", "multipart", "send_pieces"]

log = logging.getLogger("thor_gateway.static")

CHUNK = 64 * 1024  # one pread
TURN_BUDGET = 1024 * 1024  # bytes read per loop iteration, so other connections get a turn
Piece = bytes | tuple[int, int]  # literal bytes, or (offset, count) of the file


def send_pieces(exchange: Any, fd: int, pieces: list[Piece], sendfile: bool) -> None:
    """Send ``pieces`` as the body of a started response, then end it; ``fd`` is taken over."""
    sent = _send_by_sendfile(exchange, fd, pieces) if sendfile else 0
    if sent == len(pieces):
        os.close(fd)  # the connection holds its own duplicate
    else:
        FileSender(exchange, fd, pieces[sent:]).pump()


def _send_by_sendfile(exchange: Any, fd: int, pieces: list[Piece]) -> int:
    """Queue the pieces, the file's by ``os.sendfile``, and end the response; how many went.

    Fewer than all (none for a file piece) when the exchange cannot sendfile (TLS, an
    exchange without ``response_file``): the rest goes through a :class:`FileSender`.
    """
    response_file = getattr(exchange, "response_file", None)
    if response_file is None:
        return 0
    for done, piece in enumerate(pieces):
        if piece.__class__ is bytes:
            exchange.response_body(piece)
        elif not response_file(fd, *piece):
            return done
    exchange.response_done()
    return len(pieces)


def multipart(
    ranges: list[tuple[int, int]], length: int, part_type: bytes
) -> tuple[list[Piece], int, bytes]:
    """The parts of a multipart/byteranges body (RFC 9110 §14.6), its size, its boundary."""
    boundary = secrets.token_hex(16).encode("ascii")
    pieces: list[Piece] = []
    size = 0
    for first, last in ranges:
        head = b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n" % (
            boundary,
            part_type,
            first,
            last,
            length,
        )
        pieces += [head, (first, last - first + 1)]
        size += len(head) + last - first + 1
    tail = b"\r\n--%s--\r\n" % boundary
    pieces.append(tail)
    return pieces, size + len(tail), boundary


class FileSender:
    """Streams pieces of an open file (and literal bytes) to an exchange as it drains.

    Owns ``fd``: it is closed when the exchange is done, whether the response
    completed or the client went away.
    """

    __slots__ = ("exchange", "fd", "finished", "paused", "pieces", "scheduled")

    def __init__(self, exchange: Any, fd: int, pieces: list[Piece]) -> None:
        self.exchange = exchange
        self.fd = fd
        self.pieces: deque[Piece] = deque(pieces)
        self.paused = False
        self.scheduled = False
        self.finished = False
        exchange.on("pause", self._on_pause)
        exchange.on("done", self._on_done)

    def _on_pause(self, paused: bool) -> None:
        self.paused = paused
        if not paused and not self.scheduled:
            self.pump()

    def _on_done(self, completed: bool) -> None:
        if not self.finished:
            self.finished = True
            os.close(self.fd)

    def _resume(self) -> None:
        self.scheduled = False
        self.pump()

    def pump(self) -> None:
        """Send until paused, done, or this turn's budget is spent."""
        exchange = self.exchange
        pieces = self.pieces
        budget = TURN_BUDGET
        while pieces:
            if self.paused or self.finished:
                return
            if budget <= 0:
                # Another turn of the loop first, so other connections are served too.
                self.scheduled = True
                exchange.loop.call_soon(self._resume)
                return
            piece = pieces[0]
            if piece.__class__ is bytes:
                pieces.popleft()
                exchange.response_body(piece)
                budget -= len(piece)
                continue
            offset, count = piece
            try:
                data = os.pread(self.fd, min(CHUNK, count), offset)
            except OSError as error:
                log.warning("reading a static file failed: %s", error)
                exchange.abort()
                return
            if not data:  # the file shrank under us: cut the response, never pad it
                log.warning("a static file changed while being served")
                exchange.abort()
                return
            if len(data) == count:
                pieces.popleft()
            else:
                pieces[0] = (offset + len(data), count - len(data))
            budget -= len(data)
            exchange.response_body(data)
        if not self.finished:
            exchange.response_done()
