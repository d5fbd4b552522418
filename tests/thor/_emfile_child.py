"""Child process of the EMFILE test: accept() with no descriptor left.

Runs alone in its process so that lowering RLIMIT_NOFILE cannot disturb other
tests.  Prints the server's events as one JSON list.
"""

from __future__ import annotations

import json
import os
import resource
import socket
from typing import Any

import thor
from thor.loop import Loop
from thor.testing import run_for


def main() -> None:
    loop = Loop()
    loop.fatal_errors = True
    server = thor.TcpServer("127.0.0.1", 0, loop=loop)
    server.accept_backoff = 0.05
    events: list[Any] = []
    fillers: list[int] = []

    def free_descriptors() -> None:
        while fillers:
            os.close(fillers.pop())

    def on_paused(code: int) -> None:
        events.append(["paused", code])
        free_descriptors()  # the backoff timer will find descriptors again

    def on_connect(conn: thor.TcpConnection) -> None:
        events.append("connect")
        conn.abort()
        loop.stop()

    server.on("accept_paused", on_paused)
    server.on("accept_resumed", lambda: events.append("resumed"))
    server.on("connect", on_connect)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    while len(fillers) < 10_000:  # use up every descriptor left
        try:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    try:
        run_for(loop, 5)
    finally:
        free_descriptors()
        raw.close()
        server.shutdown()
        loop.close()
    print(json.dumps(events))


if __name__ == "__main__":
    main()
