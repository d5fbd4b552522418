"""The evented client from threads: a blocking helper for WSGI apps in the thread pool.

Usage, in a Flask view running in the gateway's thread pool::

    from thor_gateway.aggregation.blocking import BlockingClient
    backends = BlockingClient()

    @app.get("/")
    def home():
        results = backends.fan_out({"a": A_URL, "b": B_URL}, deadline=2.0)
        return {name: r.json() for name, r in results.items() if r.ok}

Theory of operation: the loop owns every socket, so a thread never touches the client.  It
posts the work to the loop with ``loop.run_in_loop`` (the only thread-safe call), the loop
runs the fan-out of :mod:`thor_gateway.aggregation.fanout` there, and the answer comes back
through a :class:`concurrent.futures.Future` the thread waits on, with a timeout (the
fan-out's deadline plus a margin, so a stuck loop cannot hang the thread for ever).  The
calls of one fan-out run concurrently on the loop, so a view waits for the slowest of
them, not for their sum, and holds no thread per call.

Calling it from the loop thread itself would deadlock (the loop would wait for itself),
so that raises :class:`RuntimeError` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import thor.loop
from thor_gateway.aggregation.fanout import Call, DeadlineError, FanOut, Result, client_for

__all__ = ["BlockingClient"]

# How much longer than the deadline a thread waits for the loop's answer.
_MARGIN = 1.0


class BlockingClient:
    """Blocking calls through the evented client of ``loop`` (the default loop at call time)."""

    def __init__(self, loop: thor.loop.Loop | None = None, client: Any = None) -> None:
        self._loop = loop
        self._client = client
        self._loop_thread: int | None = None

    @property
    def loop(self) -> thor.loop.Loop:
        return self._loop or thor.loop.default()

    def fetch(
        self,
        url: str | bytes,
        method: bytes | str = b"GET",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        timeout: float = 10.0,
    ) -> Result:
        """One request; returns its :class:`Result` (``error`` set if it failed)."""
        call = Call(
            url,
            method.encode("ascii") if isinstance(method, str) else method,
            list(headers or []),
            body,
        )
        return self.fan_out({"fetch": call}, deadline=timeout)["fetch"]

    def fan_out(self, calls: Mapping[str, Call | str], deadline: float = 10.0) -> dict[str, Result]:
        """Run ``calls`` concurrently on the loop; block until all ended or ``deadline``."""
        loop = self.loop
        if loop.running and self._on_loop_thread():
            raise RuntimeError("BlockingClient called on the loop thread: use fan_out() there")
        future: Future[dict[str, Result]] = Future()
        box: list[FanOut] = []

        def start() -> None:
            self._loop_thread = threading.get_ident()
            if not future.set_running_or_notify_cancel():
                return
            try:
                client = self._client or client_for(loop)
                box.append(
                    FanOut(calls, future.set_result, deadline=deadline, client=client).start()
                )
            except Exception as exc:
                future.set_exception(exc)

        loop.run_in_loop(start)
        try:
            return future.result(timeout=deadline + _MARGIN)
        except FutureTimeout:
            # The loop did not answer in time (busy or stopped): give up on the calls.
            loop.run_in_loop(lambda: box[0].cancel() if box else future.cancel())
            return {
                name: Result(name, error=DeadlineError("the loop did not answer in time"))
                for name in calls
            }

    def _on_loop_thread(self) -> bool:
        return self._loop_thread == threading.get_ident()
