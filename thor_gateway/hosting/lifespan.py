"""The ASGI lifespan protocol (ASGI spec "Lifespan Protocol", 2.0+ with ``state``).

One task per app runs ``app({"type": "lifespan", ...}, receive, send)`` on the
adapter's asyncio loop for the life of the server: ``receive()`` first yields
``lifespan.startup``, and ``lifespan.shutdown`` when the server drains; the app
answers with ``lifespan.startup.complete`` / ``.failed`` and
``lifespan.shutdown.complete`` / ``.failed``.  ``scope["state"]`` is a dict the
app fills at startup; every request scope gets a shallow copy of it.

Modes: ``"on"`` requires the protocol (any failure fails startup); ``"auto"``
tolerates apps that do not speak it (an exception before startup completed, or
returning without answering, is logged at debug and the app is served without
lifespan); ``"off"`` never sends the lifespan scope.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["LifespanError", "LifespanManager"]

log = logging.getLogger("thor_gateway.lifespan")

Message = MutableMapping[str, Any]
AsgiApp = Callable[..., Awaitable[None]]
MODES = ("auto", "on", "off")


class LifespanError(RuntimeError):
    """The app reported (or caused) a failed lifespan startup or shutdown.

    ``str()`` is one line; ``details`` is the app's own traceback (or the multi-line message
    it sent), for the log to show once, under that line.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _reported(message: str) -> LifespanError:
    """A ``.failed`` message: frameworks send a whole traceback; its last line says what."""
    lines = [line for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return LifespanError(message.strip())
    return LifespanError(lines[-1].strip(), message.rstrip())


def _raised(exc: BaseException) -> LifespanError:
    """An exception out of the app, with the app's frames only (not this module's)."""
    report = traceback.TracebackException.from_exception(exc)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if frame.filename != __file__]
    )
    return LifespanError(f"{type(exc).__name__}: {exc}", "".join(report.format()).rstrip())


class LifespanManager:
    """Drives one app's lifespan on the asyncio loop (call its coroutines there)."""

    startup_timeout = 60.0
    shutdown_timeout = 60.0

    def __init__(self, app: AsgiApp, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"lifespan must be one of {MODES}, not {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[Message] | None = None
        self._startup: asyncio.Future[None] | None = None
        self._shutdown: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Send ``lifespan.startup``; raise :class:`LifespanError` if it failed."""
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        await asyncio.wait_for(asyncio.shield(self._startup), self.startup_timeout)

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown``; raise :class:`LifespanError` if it failed."""
        if not self.supported or self._inbox is None or self._shutdown is None:
            return
        if self._task is not None and self._task.done():
            return  # the app already returned: nothing listens for shutdown
        await self._inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(asyncio.shield(self._shutdown), self.shutdown_timeout)

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._app_failed(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._app_returned()

    def _app_failed(self, exc: BaseException) -> None:
        assert self._startup is not None
        assert self._shutdown is not None
        if not self._startup.done():
            if self.mode == "auto":
                log.debug("the app does not support lifespan (%r); going on without it", exc)
                self.supported = False
                self._startup.set_result(None)
            else:  # reported once, by whoever awaits startup (the server logs it)
                self._startup.set_exception(_raised(exc))
        elif self._startup.exception() is not None:
            # The app said startup failed, then raised it (Starlette does): said already.
            log.debug("the lifespan task raised after a failed startup: %r", exc)
            if not self._shutdown.done():
                self._shutdown.set_result(None)  # nobody awaits it: no asyncio warning
        elif not self._shutdown.done():
            log.error("lifespan task raised", exc_info=exc)
            self._shutdown.set_exception(LifespanError(f"lifespan raised {exc!r}"))

    def _app_returned(self) -> None:
        assert self._startup is not None
        assert self._shutdown is not None
        if not self._startup.done():
            if self.mode == "auto":
                log.debug("the app returned from lifespan without starting up; going on")
                self.supported = False
                self._startup.set_result(None)
            else:
                self._startup.set_exception(LifespanError("the app returned before startup"))
        elif not self._shutdown.done():
            self._shutdown.set_result(None)

    async def _receive(self) -> Message:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        assert self._startup is not None
        assert self._shutdown is not None
        kind = message.get("type")
        if kind == "lifespan.startup.complete" and not self._startup.done():
            self._startup.set_result(None)
        elif kind == "lifespan.startup.failed" and not self._startup.done():
            self._startup.set_exception(_reported(message.get("message") or "startup failed"))
        elif kind == "lifespan.shutdown.complete" and not self._shutdown.done():
            self._shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed" and not self._shutdown.done():
            self._shutdown.set_exception(LifespanError(message.get("message") or "shutdown failed"))
        else:
            raise LifespanError(f"unexpected lifespan message {kind!r}")
