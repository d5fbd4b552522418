"""Apps that tell the client address they see (imported by the gateway subprocess)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """WSGI: REMOTE_ADDR and REMOTE_PORT as JSON."""
    body = json.dumps([environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI: the scope's client as JSON."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    client = scope.get("client")
    body = json.dumps(list(client) if client else None).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
