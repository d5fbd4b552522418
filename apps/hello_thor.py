"""Hello world on Thor's own HttpServer API: 200 with the 13 bytes ``Hello, world!``.

Standalone (the benchmark harness runs it this way)::

    python apps/hello_thor.py 127.0.0.1 8000

or as a native app under thor-gateway, which calls ``handler(exchange)`` for
each request routed to it::

    thor-gateway apps.hello_thor:handler
"""

from __future__ import annotations

import sys
from typing import Any

import thor
from thor.http.server import HttpServer
from thor_gateway import native_app

BODY = b"Hello, world!"
HEADERS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")]


@native_app
def handler(exchange: Any) -> None:
    """Answer once the request (and any body) has arrived."""

    def request_done(trailers: list[tuple[bytes, bytes]]) -> None:
        exchange.response_start(200, b"OK", HEADERS)
        exchange.response_body(BODY)
        exchange.response_done([])

    exchange.once("request_done", request_done)


def main(host: str, port: int) -> None:
    """Serve ``handler`` on host:port until interrupted."""
    server = HttpServer(host, port)
    server.on("exchange", handler)
    thor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
