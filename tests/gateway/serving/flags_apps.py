"""Apps the tests of the deployment flags serve (imported by the gateway subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from thor_gateway import native_app


def _json(start_response: Callable[..., Any], data: object) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def process(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """What the serving process looks like: directory, ids, a variable, the import path."""
    name = environ.get("QUERY_STRING", "") or "FLAGS_TEST"
    return _json(
        start_response,
        {
            "cwd": os.getcwd(),
            "uid": os.getuid(),
            "gid": os.getgid(),
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "variable": os.environ.get(name),
            "sys_path": sys.path[:6],
            "client": environ.get("REMOTE_ADDR"),
            "scheme": environ["wsgi.url_scheme"],
        },
    )


def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``?S``: sleep S seconds, then answer; ``/stream``: a first chunk, then the sleep."""
    seconds = float(environ.get("QUERY_STRING") or "0")
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(seconds)
    time.sleep(seconds)
    return _json(start_response, {"slept": seconds})


def _stream(seconds: float) -> Iterator[bytes]:
    yield b"first "
    time.sleep(seconds)
    yield b"second"


async def slow_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI: sleep ``?S`` seconds, then answer."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(float(scope["query_string"] or b"0"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


@native_app
def blocking(exchange: Any) -> None:
    """A native app: ``/block`` blocks the worker's loop for good; anything else: its pid."""
    if exchange.uri.startswith(b"/block"):
        time.sleep(3600)
    body = str(os.getpid()).encode()

    def done(trailers: list[tuple[bytes, bytes]]) -> None:
        exchange.response_start(200, b"OK", [(b"Content-Length", b"%d" % len(body))])
        exchange.response_body(body)
        exchange.response_done([])

    exchange.once("request_done", done)
