"""A Thor echo server on a loop thread that records its WebSockets' events (for test_io)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import thor.loop
import thor.websocket
from thor.http.server import HttpServer
from thor.websocket import WebSocket


class ServerOnThread:
    """Accepts every handshake with ``options``, echoes, records events in ``events``."""

    def __init__(
        self, events: list[tuple[str, Any]], *, close_on_open: bool = False, **options: Any
    ) -> None:
        self.events = events
        self.loop = thor.loop.make()
        self.server = HttpServer("127.0.0.1", 0, self.loop)
        self.port = self.server.port
        self.close_on_open = close_on_open
        self.options = options
        self.server.on("exchange", self.exchange)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.lock = threading.Lock()

    def exchange(self, ex: Any) -> None:
        websocket = thor.websocket.accept(ex, **self.options)
        if websocket is None:
            return
        self.record("open", None)
        self.watch(websocket)
        if self.close_on_open:
            websocket.close(1000)

    def watch(self, websocket: WebSocket) -> None:
        def message(data: str | bytes) -> None:
            self.record("message", data)
            if type(data) is str:
                websocket.send_text(data)
            else:
                websocket.send_bytes(data)

        def close(code: int, reason: str) -> None:
            self.record("close", code)
            self.record("reason", reason)

        websocket.on("message", message)
        websocket.on("error", lambda err: self.record("error", err.code))
        websocket.on("close", close)

    def record(self, name: str, value: Any) -> None:
        with self.lock:
            self.events.append((name, value))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.loop.run_in_loop(self.loop.stop)
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.server.tcp_server.stop_accepting(drain_backlog=False)
        self.loop.close()

    def wait_for(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``done`` (the loop thread records events) until true or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if done():
                    return
            time.sleep(0.01)
        raise AssertionError(f"timed out; events: {self.events}")
