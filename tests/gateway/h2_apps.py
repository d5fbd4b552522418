"""Apps the HTTP/2 gateway tests mount (tests/gateway/test_http2.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    data = {
        "protocol": environ["SERVER_PROTOCOL"],
        "host": environ.get("HTTP_HOST"),
        "n": len(body),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(data).encode()]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    data = {"http_version": scope["http_version"], "n": size}
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
            "trailers": True,
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})
    await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})
