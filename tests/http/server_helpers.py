"""Run a Thor HttpServer on its own loop thread, for tests with blocking clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import thor.loop
from thor.http.server import HttpServer, HttpServerExchange

Handler = Callable[[HttpServerExchange], None]


class ServerThread:
    """An HttpServer on 127.0.0.1 (a free port) whose loop runs in a daemon thread."""

    def __init__(self, handler: Handler, **settings: Any) -> None:
        self.loop = thor.loop.make()
        self.server = HttpServer("127.0.0.1", 0, loop=self.loop, **settings)
        self.server.on("exchange", handler)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.loop.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.loop.stop)
        self._thread.join(5)
        assert not self._thread.is_alive(), "the server loop did not stop"
        # The loop has stopped: this thread may now tidy up its sockets.
        for conn in list(self.server.tcp_server.active_connections):
            conn.abort()
        self.server.tcp_server.stop_accepting(drain_backlog=False)
        self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread."""
        self.loop.run_in_loop(fn, *args)

    def raw(self, data: bytes, timeout: float = 3.0) -> bytes:
        """Send ``data`` on a new connection and read until the server closes it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Everything until EOF (the socket's timeout bounds each wait)."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def how_it_ends(sock: socket.socket, seconds: float = 3.0) -> tuple[str, int]:
    """Read fast until the connection ends: ("a reset" | "a close" | "nothing" within
    ``seconds``, the bytes received before that)."""
    deadline = time.monotonic() + seconds
    received = 0
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return "a reset", received
        if not data:
            return "a close", received
        received += len(data)
    return "nothing", received


def hello(ex: HttpServerExchange) -> None:
    """Answer every request with 13 bytes, after reading the whole request."""

    def done(trailers: object) -> None:
        ex.response_start(200, "OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        ex.response_body(b"Hello, world!")
        ex.response_done([])

    ex.on("request_done", done)
