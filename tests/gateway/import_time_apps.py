"""Apps that bind to the default loop when their module is imported, as Thor 0.17 apps do:
under ``--workers`` the master imports them before it forks (see test_workers.py)."""

from __future__ import annotations

import os
from typing import Any

import thor
from thor.http import HttpClient
from thor_gateway.proxy import ProxyHandler

UPSTREAM = os.environ.get("IMPORT_TIME_UPSTREAM", "http://127.0.0.1:9")
proxy = ProxyHandler([UPSTREAM])
client = HttpClient()


def fetch(exchange: Any) -> None:
    """A native app that answers with the upstream's body, fetched by the module's client."""

    @thor.on(exchange)
    def request_done(trailers: Any) -> None:
        body: list[bytes] = []
        call = client.exchange()
        call.on("response_body", body.append)
        call.on(
            "response_done",
            lambda _: exchange.respond(
                200, b"OK", [(b"Content-Type", b"text/plain")], b"".join(body)
            ),
        )
        call.on("error", lambda err: exchange.respond(502, b"Bad Gateway", [], str(err).encode()))
        call.request_start(b"GET", UPSTREAM.encode() + b"/fetched", [])
        call.request_done([])
