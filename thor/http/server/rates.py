"""A minimum data rate, measured over windows (Kestrel's MinRequestBodyDataRate).

A client that sends a request body (or takes a response) one byte every few seconds makes
progress, so no stall timeout ever fires; the rate does. The connection measures bytes
moved over each window, the first being the grace period, and checks only when its timer
fires: data that moves in time costs nothing more.

What a client has taken of a response is what was written, less what waits in our buffer
and what the kernel holds unacknowledged (``TcpConnection.unsent``): on loopback the send
buffer grows to megabytes and takes a 1 MiB response whole, so our buffer alone says the
client keeps up while it reads next to nothing (issue 16). A response handed to the kernel
whole is therefore watched until the kernel's queue drains (``Wait.DRAIN``): the check
costs a system call at the end of large responses only, and then runs on the rate timer.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from thor.tcp import TcpConnection

__all__ = ["WATCH_AFTER", "RateWindow", "kernel_holds", "output_progress", "response_rate_kept"]

log = logging.getLogger("thor.http.server")

# Responses up to this size are not watched after their end: the ioctl would cost every
# small response a system call, and what a slow reader of one holds in the kernel is small.
WATCH_AFTER = 64 * 1024


class Measured(Protocol):
    """What is read of an exchange: the response bytes it wrote."""

    res_bytes: int


class RateWindow:
    """Bytes moved since the window began; ``subject`` is what is measured (an exchange)."""

    __slots__ = ("moved", "since", "subject")

    def __init__(self) -> None:
        self.since = 0.0
        self.moved = 0
        self.subject: Any = None

    def start(self, now: float, moved: int, subject: Any = None) -> None:
        """Measure from ``now``, ``moved`` bytes having moved so far."""
        self.since = now
        self.moved = moved
        self.subject = subject

    def kept(self, now: float, rate: float, window: float, moved: int) -> bool:
        """Whether ``moved`` kept ``rate`` bytes/s since the window began; a window that is
        over starts again."""
        elapsed = now - self.since
        if elapsed < window:
            return True
        if moved - self.moved < rate * elapsed:
            return False
        self.since = now
        self.moved = moved
        return True


def output_progress(tcp_conn: TcpConnection, exchange: Measured | None) -> int:
    """Response bytes the client has taken of ``exchange``: what it wrote, less what waits
    in our buffer and in the kernel's send queue (unacknowledged)."""
    written = exchange.res_bytes if exchange is not None else 0
    return written - tcp_conn.write_buffer_size - tcp_conn.unsent()


def kernel_holds(tcp_conn: TcpConnection) -> bool:
    """Whether some of what was written has not reached the client yet."""
    return bool(tcp_conn.write_buffer_size or tcp_conn.unsent())


def response_rate_kept(
    window: RateWindow, tcp_conn: TcpConnection, rate: float, length: float, now: float
) -> bool:
    """The minimum response rate check of ``window`` (its subject, the exchange measured);
    False: too slow, logged, and the caller cuts the connection."""
    if window.kept(now, rate, length, output_progress(tcp_conn, window.subject)):
        return True
    log.info("client %r reads its response slower than %g bytes/s", tcp_conn.address, rate)
    return False
