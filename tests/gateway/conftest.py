"""Shared fixtures for gateway tests (several owners: only ADD fixtures here)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import thor.loop
from thor.asyncio_loop import AsyncioLoop
from thor.http.server import HttpServer
from thor_gateway.routing.request import request_at_mount

# --------------------------------------------------------------------------------------
# adapters: a real HttpServer on loopback, its loop in a background thread, one handler
# mounted at a prefix (what the router does, in a few lines).


# Errors logged here mean a callback or a listener raised: a bug in the code under test.
_CRASH_LOGGERS = ("thor.loop", "thor.http.server")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class LiveServer:
    """An HttpServer whose loop runs in a thread; ``mount(handler, prefix)`` serves a handler."""

    def __init__(
        self, path: str | None = None, *, asyncio_loop: bool = False, **settings: Any
    ) -> None:
        # asyncio_loop: the server runs on an AsyncioLoop (ASGI apps then share its thread).
        self.loop = AsyncioLoop() if asyncio_loop else thor.loop.make()
        if path is None:
            self.server = HttpServer("127.0.0.1", 0, loop=self.loop, **settings)
        else:  # a UNIX socket
            self.server = HttpServer(None, 0, loop=self.loop, path=path, **settings)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.handler: Any = None
        self.prefix = b""
        self.exchanges: list[Any] = []
        self.server.on("exchange", self._on_exchange)
        self._thread = threading.Thread(target=self.loop.run, name="test-loop", daemon=True)
        self._crashes = _Collect()
        for name in _CRASH_LOGGERS:
            logging.getLogger(name).addHandler(self._crashes)

    def mount(self, handler: Any, prefix: bytes = b"") -> LiveServer:
        self.handler = handler
        self.prefix = prefix
        return self

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def _on_exchange(self, exchange: Any) -> None:
        # As the router does: route as the exchange arrives (request_start follows).
        self.exchanges.append(exchange)
        request = request_at_mount(
            exchange, exchange.method, exchange.uri, exchange.req_hdrs, self.prefix
        )
        self.handler.handle(exchange, request)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result."""
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append(fn(*args))
            except BaseException as exc:
                box.append(exc)
            done.set()

        self.loop.run_in_loop(run)
        assert done.wait(timeout), "the loop did not run the call in time"
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def _close_connections(self) -> None:
        for conn in list(self.server.connections):
            conn.tcp_conn.abort()

    def loop_crashes(self) -> list[logging.LogRecord]:
        return [r for r in self._crashes.records if r.levelno >= logging.ERROR]

    def stop(self) -> None:
        for name in _CRASH_LOGGERS:
            logging.getLogger(name).removeHandler(self._crashes)
        if self._thread.is_alive():
            self._shut_handler_down()
            self.loop.run_in_loop(self.server.shutdown)
            self.loop.run_in_loop(self._close_connections)
            self.loop.run_in_loop(self.loop.stop)
            self._thread.join(10)
        self.loop.close()

    def _shut_handler_down(self) -> None:
        """The mounted handler's shutdown, as the gateway runs it (closes upstream pools)."""
        handler = self.handler
        if handler is None or not hasattr(handler, "shutdown"):
            return
        finished = threading.Event()

        def shut() -> None:
            try:
                handler.shutdown(lambda exc: finished.set())
            except Exception:
                finished.set()
                raise

        self.loop.run_in_loop(shut)
        finished.wait(5)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(**server_settings)`` -> a started :class:`LiveServer`.

    Mount a handler with ``.mount(handler, prefix)`` before sending requests.  At
    teardown the loop is stopped and no callback may have raised on it.
    """
    servers: list[LiveServer] = []

    def make(**settings: Any) -> LiveServer:
        live = LiveServer(**settings)
        servers.append(live)
        return live.start()

    yield make
    crashes = []
    for live in servers:
        live.stop()
        crashes += live.loop_crashes()
    assert not crashes, [r.getMessage() for r in crashes]


@pytest.fixture
def wsgi_server(live_server: Callable[..., LiveServer]) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``wsgi_server(app, prefix=b"", threads=4, max_queue=16, validate=True, **server)``.

    Serves ``app`` (wrapped in ``wsgiref.validate.validator`` unless ``validate=False``)
    through a :class:`~thor_gateway.wsgi.WsgiHandler`; ``.wsgi`` is the handler.
    """
    from wsgiref.validate import validator

    from thor_gateway.hosting.wsgi import WsgiHandler

    handlers: list[WsgiHandler] = []

    def make(
        app: Any,
        prefix: bytes = b"",
        *,
        threads: int = 4,
        max_queue: int = 16,
        validate: bool = True,
        **settings: Any,
    ) -> LiveServer:
        live = live_server(**settings)
        handler = WsgiHandler(
            validator(app) if validate else app,
            threads=threads,
            max_queue=max_queue,
            loop=live.loop,
        )
        handlers.append(handler)
        live.mount(handler, prefix)
        live.wsgi = handler  # type: ignore[attr-defined]
        return live

    yield make
    for handler in handlers:
        handler.pool.shutdown(wait=True, timeout=10)


# --------------------------------------------------------------------------------------
# gateway: thor-gateway itself in a subprocess (tests/gateway/gateway_helpers.py).


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., Any]]:
    """``start_gateway(*args)`` runs ``python -m thor_gateway *args`` until it listens."""
    from tests.gateway.gateway_helpers import Gateway

    started: list[Gateway] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Gateway:
        gateway = Gateway(*args, env=env)
        started.append(gateway)
        return gateway.wait_ready() if ready else gateway

    yield start
    for gateway in started:
        gateway.close()


@pytest.fixture(params=["thread", "inline"])
def asgi_server(
    live_server: Callable[..., LiveServer], request: pytest.FixtureRequest
) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``asgi_server(app, prefix=b"", lifespan="auto", **server)`` -> LiveServer.

    Serves ``app`` through an :class:`~thor_gateway.asgi.AsgiHandler` after its lifespan
    startup (``.startup_error`` holds what startup reported); ``.asgi`` is the handler.
    Shut down (lifespan shutdown included) at teardown.
    """
    from thor_gateway.hosting.asgi import AsgiHandler

    started: list[tuple[LiveServer, Any]] = []

    def run_phase(live: LiveServer, method: Callable[..., None]) -> BaseException | None:
        finished = threading.Event()
        outcome: list[BaseException | None] = []

        def done(exc: BaseException | None) -> None:
            outcome.append(exc)
            finished.set()

        live.call(method, done)
        assert finished.wait(10), "lifespan phase did not finish"
        return outcome[0]

    def make(
        app: Any, prefix: bytes = b"", *, lifespan: str = "auto", **settings: Any
    ) -> LiveServer:
        # "inline": the server's loop is an AsyncioLoop and the app runs on its thread.
        live = live_server(asyncio_loop=request.param == "inline", **settings)
        handler = AsgiHandler(app, loop=live.loop, lifespan=lifespan)
        live.mount(handler, prefix)
        live.asgi = handler  # type: ignore[attr-defined]
        live.startup_error = run_phase(live, handler.startup)  # type: ignore[attr-defined]
        started.append((live, handler))
        return live

    yield make
    for live, handler in started:
        run_phase(live, handler.shutdown)
