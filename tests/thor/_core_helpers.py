"""Helpers shared by the core tests (loop, events, TCP): cleanup and waiting."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

import thor
from thor.loop import Loop
from thor.testing import run_for

# Every selector class this platform has: loop tests run once per class.
SELECTOR_CLASSES = [
    getattr(selectors, name)
    for name in ("EpollSelector", "KqueueSelector", "PollSelector", "SelectSelector")
    if hasattr(selectors, name)
]


def has_ipv6_loopback() -> bool:
    """True if ::1 can be bound here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Net:
    """Tracks servers, connections and raw sockets made by a test; closes them at the end."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.servers: list[thor.TcpServer] = []
        self.conns: list[thor.TcpConnection] = []
        self.socks: list[socket.socket] = []

    def server(self, *args: Any, **kwargs: Any) -> thor.TcpServer:
        server = thor.TcpServer(*args, loop=self.loop, **kwargs)
        self.servers.append(server)
        server.on("connect", self.conns.append)
        return server

    def client(self) -> thor.TcpClient:
        client = thor.TcpClient(self.loop)
        client.on("connect", self.conns.append)
        return client

    def sock(self, sock: socket.socket) -> socket.socket:
        self.socks.append(sock)
        return sock

    def close(self) -> None:
        for conn in self.conns:
            conn.abort()
        for server in self.servers:
            server.stop_accepting(drain_backlog=False)
            for conn in list(server.active_connections):
                conn.abort()
        for sock in self.socks:
            sock.close()


def run_until(loop: Loop, done: Callable[[], bool], seconds: float = 5.0) -> None:
    """Run ``loop`` until ``done()`` is true (checked every millisecond), with a deadline."""

    def check() -> None:
        if done():
            loop.stop()
        else:
            loop.schedule(0.001, check)

    loop.call_soon(check)
    run_for(loop, seconds)


def wait_for(done: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``done()`` from a plain thread until it is true; AssertionError at the deadline."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s")
        time.sleep(0.001)
