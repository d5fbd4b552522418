"""The benchmark's aggregation, on Thor: GET / fetches three JSON documents from the backend
concurrently and answers them merged, ``{"a": 1, "b": 2, "c": 3}``.

    BENCH_ORIGIN=http://127.0.0.1:8081 thor-gateway --bind 127.0.0.1:8000 apps.aggregate_thor:app

``app`` is an :class:`~thor_gateway.aggregation.Aggregator`, a handler the gateway mounts
as it is; every backend call is one exchange on the loop's shared, kept-alive client.
"""

from __future__ import annotations

import os
from typing import Any

from thor_gateway.aggregation import Aggregator, Call

PATHS = ("/a.json", "/b.json", "/c.json")
BASE = os.environ.get("BENCH_ORIGIN", "http://127.0.0.1:8081")
CALLS = {path: Call(BASE + path) for path in PATHS}


def calls(request: Any) -> dict[str, Call]:
    return CALLS


# require_all: a failed backend call is a 502 (504 past the deadline), never a partial merge.
app = Aggregator(calls, deadline=5.0, require_all=True)
