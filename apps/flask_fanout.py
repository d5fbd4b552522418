"""A Flask view that fans out through Thor's evented client (run it under thor-gateway).

    BENCH_ORIGIN=http://127.0.0.1:8081 thor-gateway --bind 127.0.0.1:8000 apps.flask_fanout:app

GET / fetches ``/a.json``, ``/b.json`` and ``/c.json`` from ``BENCH_ORIGIN`` *concurrently*
and answers them merged.  The view runs in the gateway's thread pool; the
:class:`~thor_gateway.blocking.BlockingClient` hands the calls to the loop and waits for
all of them at once, so the view takes as long as the slowest call, where calling
``requests`` three times would take the sum.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from thor_gateway.aggregation.blocking import BlockingClient

BASE = os.environ.get("BENCH_ORIGIN", "http://127.0.0.1:8081")
PATHS = ("/a.json", "/b.json", "/c.json")

app = Flask(__name__)
backends = BlockingClient()


@app.get("/")
def aggregate() -> ResponseReturnValue:
    results = backends.fan_out({path: BASE + path for path in PATHS}, deadline=5.0)
    failed = [name for name, result in results.items() if not result.ok]
    if failed:
        return jsonify(error="backend calls failed", failed=failed), 502
    merged: dict[str, object] = {}
    for result in results.values():
        merged.update(result.json())
    return jsonify(merged)
