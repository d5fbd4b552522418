"""A dashboard that one request builds from three JSON services, called concurrently.

GET /dashboard/<user> calls the user, orders and recommendations services at once and
answers::

    {"user": {...}, "orders": [...], "recommendations": [...], "missing": []}

Recommendations are optional: past their own 300 ms budget, or failing, they are left out
and named in ``missing``; the user is required (without it: 502, or 504 when it was late).
The whole fan-out has a 2 s deadline.

The three services live in this file too (``services``, a native Thor app), so that the
example runs on its own::

    SERVICES_URL=http://127.0.0.1:8000/svc thor-gateway --bind 127.0.0.1:8000 \\
        --mount /svc=apps.aggregate_services:services --mount /=apps.aggregate_services:app
    curl http://127.0.0.1:8000/dashboard/7

Point ``SERVICES_URL`` elsewhere to use real services with the same paths.
"""

from __future__ import annotations

import json
import os
from typing import Any

from thor.http import error
from thor_gateway import native_app
from thor_gateway.aggregation import Aggregator, Call, DeadlineError, Result

SERVICES_URL = os.environ.get("SERVICES_URL", "http://127.0.0.1:8000/svc")


class NotFound(error.HttpError):
    desc = "Not Found"
    status = 404


def calls(request: Any) -> dict[str, Call]:
    parts = request.path_info.strip(b"/").split(b"/")
    if len(parts) != 2 or parts[0] != b"dashboard" or not parts[1].isdigit():
        return {}  # combine() answers 404
    user = parts[1].decode()
    return {
        "user": Call(f"{SERVICES_URL}/users/{user}"),
        "orders": Call(f"{SERVICES_URL}/orders?user={user}"),
        "recommendations": Call(f"{SERVICES_URL}/recommendations/{user}", timeout=0.3),
    }


def combine(results: dict[str, Result]) -> dict[str, Any]:
    if not results:
        raise NotFound("try /dashboard/<number>")
    user = results["user"]
    if not user.ok:
        if isinstance(user.error, DeadlineError):
            raise error.ReadTimeoutError("the user service did not answer in time")
        raise error.UpstreamError(f"user service: {user.error or user.status}")
    doc: dict[str, Any] = {"user": user.json(), "missing": []}
    for name in ("orders", "recommendations"):
        result = results[name]
        if result.ok:
            doc[name] = result.json()
        else:
            doc["missing"].append(name)
    return doc


app = Aggregator(calls, combine, deadline=2.0)


# --- the three demo services -----------------------------------------------------------


def _service_answer(path: bytes, query: bytes) -> tuple[int, Any]:
    parts = path.strip(b"/").split(b"/")
    if parts[0] == b"users" and len(parts) == 2 and parts[1].isdigit():
        uid = int(parts[1])
        return 200, {"id": uid, "name": f"user {uid}"}
    if parts[0] == b"orders" and query.startswith(b"user="):
        uid = int(query[5:] or b"0")
        return 200, [{"order": uid * 100 + i, "total": 10 * i} for i in range(1, 3)]
    if parts[0] == b"recommendations" and len(parts) == 2:
        return 200, [f"item-{parts[1].decode()}-{i}" for i in range(3)]
    return 404, {"error": "not found"}


@native_app
def services(exchange: Any) -> None:
    """The users, orders and recommendations services, answering JSON at once."""

    def request_start(method: bytes, uri: bytes, headers: Any) -> None:
        path, _, query = uri.partition(b"?")
        prefix = b"/svc"
        if path.startswith(prefix):
            path = path[len(prefix) :]
        status, doc = _service_answer(path, query)
        body = json.dumps(doc).encode()
        exchange.response_start(
            status,
            b"OK" if status == 200 else b"Not Found",
            [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(body))],
        )
        exchange.response_body(body)
        exchange.response_done([])

    exchange.on("request_start", request_start)
