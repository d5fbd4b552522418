"""A proxy in its own process, for measuring its memory: ``python proxy_child.py UPSTREAM_URL``.

Prints the port it listens on, then serves until killed.
"""

from __future__ import annotations

import sys
from typing import Any

import thor.loop
from thor.http.server import HttpServer
from thor_gateway.proxy import ProxyHandler
from thor_gateway.routing.request import request_at_mount


def main() -> None:
    loop = thor.loop.default()
    server = HttpServer("127.0.0.1", 0, loop=loop)
    handler = ProxyHandler([sys.argv[1]], loop=loop, upstream_timeout=10)

    def on_exchange(exchange: Any) -> None:
        def route(method: bytes, uri: bytes, headers: list[tuple[bytes, bytes]]) -> None:
            handler.handle(exchange, request_at_mount(exchange, method, uri, headers))

        exchange.once("request_start", route)

    server.on("exchange", on_exchange)
    print(server.port, flush=True)
    loop.run()


if __name__ == "__main__":
    main()
