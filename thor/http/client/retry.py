"""When the HTTP client replays a request on another connection: the retry rules, as data.

An exchange makes a ``Retries`` only when a connection fails it (never on the usual path),
and asks it how long to wait before the next attempt; None means "fail now".

- A failed connect (nothing was sent): retried ``retry_limit`` times for socket errors only
  (not DNS, TLS or an address refused by ``check_ip``).
- A connection lost before any byte of the response, RFC 9110 §9.2.2 and RFC 9112 §9.3.1:
  only an idempotent request may be retried automatically, unless we know the server never
  saw it -- which we only know if none of it was written (then retried at once, up to
  ``MAX_FREE_RETRIES`` times). A reused connection that dies is most likely one the server
  timed out just as we sent on it: retried once at once, without counting.
"""

from __future__ import annotations

__all__ = ["MAX_FREE_RETRIES", "Retries"]

# Retries that cost nothing (nothing of the request was written yet) are still bounded.
MAX_FREE_RETRIES = 3


class Retries:
    """The retries one exchange has made so far."""

    __slots__ = ("attempts", "free", "stale_retried")

    def __init__(self) -> None:
        self.attempts = 0  # counted retries (against retry_limit)
        self.free = 0  # retries of a request none of which was written
        self.stale_retried = False  # the one retry after a reused connection died

    def after_connect_error(self, kind: str, limit: int, delay: float) -> float | None:
        """The delay before retrying a failed connect of ``kind``; None: fail."""
        if kind == "socket" and self.attempts < limit:
            self.attempts += 1
            return delay
        return None

    def after_loss(
        self,
        *,
        received: bool,
        written: bool,
        replayable: bool,
        idempotent: bool,
        reused: bool,
        limit: int,
        delay: float,
    ) -> float | None:
        """The delay before replaying a request whose connection was lost; None: fail."""
        if received:
            return None
        if not written and self.free < MAX_FREE_RETRIES:
            self.free += 1
            return 0.0
        if not replayable or not idempotent:
            return None
        if reused and not self.stale_retried:
            self.stale_retried = True
            return 0.0
        if self.attempts < limit:
            self.attempts += 1
            return float(delay)
        return None
