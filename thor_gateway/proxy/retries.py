"""Retry budgets: retry failed idempotent requests, but never turn an outage into a storm.

Theory of operation (after Finagle's RetryBudget and Envoy's retry budgets): retries may be
at most ``ratio`` of the requests seen over the last ``window`` seconds, plus a floor of
``min_per_second`` so that a quiet route can still retry.  Counts live in one-second
buckets of a ring, so both the deposit and the withdrawal are O(1) and the memory is fixed.

Which requests may be retried is the proxy's decision (RFC 9110 §9.2.2: idempotent methods,
nothing of the response relayed yet, a body that can be sent again); the budget only says
whether one more retry is affordable now.
"""

from __future__ import annotations

__all__ = ["IDEMPOTENT", "RetryBudget"]

# RFC 9110 §9.2.2.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class RetryBudget:
    """``allow(now)`` says whether a retry is affordable; ``request(now)`` counts a request."""

    def __init__(self, ratio: float = 0.2, min_per_second: float = 3.0, window: int = 10) -> None:
        if ratio < 0 or min_per_second < 0 or window < 1:
            raise ValueError("need ratio >= 0, min_per_second >= 0 and window >= 1")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.window = window
        self._requests = [0] * window
        self._retries = [0] * window
        self._second = [0] * window  # which second each bucket holds

    def _bucket(self, now: float) -> int:
        second = int(now)  # the loop's clock is monotonic and positive: int() is floor()
        index = second % self.window
        if self._second[index] != second:
            self._second[index] = second
            self._requests[index] = 0
            self._retries[index] = 0
        return index

    def _totals(self, now: float) -> tuple[int, int]:
        oldest = int(now) - self.window
        requests = retries = 0
        for i in range(self.window):
            if self._second[i] > oldest:
                requests += self._requests[i]
                retries += self._retries[i]
        return requests, retries

    def request(self, now: float) -> None:
        """Count one original request (not a retry)."""
        second = int(now)
        index = second % self.window
        if self._second[index] == second:  # the usual case, without a call: same second
            self._requests[index] += 1
        else:
            self._requests[self._bucket(now)] += 1

    def allow(self, now: float) -> bool:
        """Spend one retry if the budget has room; False when it has not."""
        index = self._bucket(now)
        requests, retries = self._totals(now)
        if retries >= self.ratio * requests + self.min_per_second * self.window:
            return False
        self._retries[index] += 1
        return True
