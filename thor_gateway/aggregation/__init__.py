"""Aggregation: responses made from other responses.

- :mod:`~thor_gateway.aggregation.fanout`: fan several requests out at once, with a deadline
  and partial results, and combine the answers (the :class:`Aggregator` handler); its public
  names are re-exported here (``from thor_gateway.aggregation import Aggregator, Call`` is
  the documented spelling);
- :mod:`~thor_gateway.aggregation.blocking`: the same fan-out from a WSGI worker thread;
- :mod:`~thor_gateway.aggregation.transform`: streaming response transforms (gzip, header
  and whole-body rewrites) for any mounted handler, the proxy's included.

May import: Thor's public API only (its client makes the calls).  It knows nothing of the
router, the adapters or the proxy, so an app can use it on its own; the proxy imports the
transforms from here.
"""

from __future__ import annotations

from thor_gateway.aggregation.fanout import (
    Aggregator,
    Call,
    DeadlineError,
    FanOut,
    Result,
    client_for,
    fan_out,
    merge_json,
    respond_json,
)

__all__ = [
    "Aggregator",
    "Call",
    "DeadlineError",
    "FanOut",
    "Result",
    "client_for",
    "fan_out",
    "merge_json",
    "respond_json",
]
