"""Apps the gateway end-to-end tests serve (imported by the gateway subprocess)."""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from thor_gateway import native_app

calls = {"n": 0}


def _json(start_response: Callable[..., Any], data: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def info(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Tells what it saw; ``?sleep=S`` waits first; ``/count`` reports how often it ran."""
    calls["n"] += 1
    query = environ.get("QUERY_STRING", "")
    if query.startswith("sleep="):
        time.sleep(float(query[6:]))
    if environ["PATH_INFO"] == "/count":
        return _json(start_response, {"calls": calls["n"] - 1})
    body = environ["wsgi.input"].read()  # wsgi.input_terminated: read to the end
    return _json(
        start_response,
        {
            "app": environ.get("thor_test.name", "info"),
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "query": query,
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "scheme": environ["wsgi.url_scheme"],
            "host": environ.get("HTTP_HOST", ""),
            "method": environ["REQUEST_METHOD"],
            "body_length": len(body),
            "x_forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "pid": os.getpid(),
        },
    )


def gc_state(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The serving process's garbage collector settings (``--gc-threshold``)."""
    return _json(start_response, {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()})


def named(name: str) -> Callable[..., Iterable[bytes]]:
    """A factory: an ``info`` app that reports ``name``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["thor_test.name"] = name
        return info(environ, start_response)

    return app


def create_app() -> Callable[..., Iterable[bytes]]:
    """A factory without arguments (``--factory``)."""
    return named("factory")


@native_app
def native(exchange: Any) -> None:
    """A native handler that answers with the request-target."""

    def done(trailers: list[tuple[bytes, bytes]]) -> None:
        body = b"native " + exchange.uri
        exchange.response_start(
            200, b"OK", [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(body))]
        )
        exchange.response_body(body)
        exchange.response_done([])

    exchange.once("request_done", done)


class FailingStartup:
    """A handler whose startup hook fails: the server must not serve."""

    def handle(self, exchange: Any, request: Any) -> None:  # pragma: no cover - never called
        raise AssertionError("served although startup failed")

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        done(RuntimeError("database unreachable"))

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)


failing_startup = FailingStartup()
not_an_app = 42


class SlowStartup:
    """A handler whose startup takes a second (an ASGI lifespan warming a cache, say)."""

    def handle(self, exchange: Any, request: Any) -> None:  # pragma: no cover - never called
        raise AssertionError("served although stopped during startup")

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        import logging
        import threading

        log = logging.getLogger("thor_gateway.test")
        log.warning("slow startup begins")

        def later() -> None:
            time.sleep(1.0)
            log.warning("slow startup done")
            self.loop.run_in_loop(done, None)

        threading.Thread(target=later, daemon=True).start()

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        import logging

        logging.getLogger("thor_gateway.test").warning("slow shutdown")
        done(None)

    @property
    def loop(self) -> Any:
        import thor.loop

        return thor.loop.default()


slow_startup = SlowStartup()


class _SlowClose:
    """A WSGI body whose close() takes 5 ms, as Django's (it closes database connections)."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"hello"

    def close(self) -> None:
        time.sleep(0.005)


def slow_close(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return _SlowClose()
