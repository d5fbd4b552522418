"""``GET /status`` (an HTML page) and ``GET /status.json`` on the metrics listener.

The page is one file, ``status.html`` next to this module: inline CSS and a small inline
script that fetches ``status.json`` (a relative URL, so the page works under any prefix)
every 2 seconds and draws the numbers and their sparklines (inline SVG).  No build step,
nothing loaded from elsewhere.  :func:`status_routes` starts the process's
:class:`~thor_gateway.operations.status.StatusBoard` and returns the two routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from thor.loop import Loop
from thor_gateway.operations.metrics import Metrics
from thor_gateway.operations.status import RouteStats, StatusBoard, status_document

__all__ = ["StatusJson", "StatusPage", "page_html", "start_board", "status_routes"]

Snapshots = Callable[[], list[dict[str, Any]]]
_PAGE: list[bytes] = []  # read once, on the first request


def page_html() -> bytes:
    """The page (package data, shipped by setup.py)."""
    if not _PAGE:
        _PAGE.append(resources.files(__package__).joinpath("status.html").read_bytes())
    return _PAGE[0]


class _Endpoint:
    """A handler of the metrics listener: GET only, never cached."""

    content_type = b""

    def body(self) -> bytes:
        raise NotImplementedError

    def handle(self, exchange: Any, request: Any) -> None:
        if request.method not in (b"GET", b"HEAD"):
            exchange.response_start(
                405, "Method Not Allowed", [(b"Allow", b"GET, HEAD"), (b"Content-Length", b"0")]
            )
            exchange.response_done([])
            return
        body = self.body()
        exchange.response_start(
            200,
            "OK",
            [
                (b"Content-Type", self.content_type),
                (b"Content-Length", str(len(body)).encode()),
                (b"Cache-Control", b"no-store"),
            ],
        )
        if request.method == b"GET":
            exchange.response_body(body)
        exchange.response_done([])

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)


class StatusJson(_Endpoint):
    """``/status.json``: :func:`~thor_gateway.operations.status.status_document` of the
    live workers' snapshots."""

    content_type = b"application/json"

    def __init__(self, snapshots: Snapshots) -> None:
        self.snapshots = snapshots

    def body(self) -> bytes:
        document = status_document(self.snapshots())
        return json.dumps(document, separators=(",", ":")).encode("utf-8")


class StatusPage(_Endpoint):
    """``/status``: the page that polls ``status.json``."""

    content_type = b"text/html; charset=utf-8"

    def body(self) -> bytes:
        return page_html()


def start_board(routes: list[Any], metrics: Metrics, loop: Loop) -> StatusBoard:
    """A board for the app ``routes`` (``Route`` objects), ticking on ``loop`` until the
    metrics say the process drains; its snapshot goes into the metrics snapshot."""
    for route in routes:
        route.stats = RouteStats()  # from now on the router counts for the page
    board = StatusBoard(
        [(r.prefix.decode("utf-8", "replace") or "/", r.handler, r.stats) for r in routes],
        metrics,
    )
    metrics.status = board.snapshot

    def tick() -> None:
        board.tick()
        if not metrics.draining:
            loop.schedule(board.next_tick_in(), tick)

    loop.schedule(board.next_tick_in(), tick)
    return board


def status_routes(
    routes: list[Any], metrics: Metrics, loop: Loop, snapshots: Snapshots | None
) -> list[tuple[bytes, Any]]:
    """Start the board; the paths and handlers of ``/status`` and ``/status.json`` on the
    metrics listener.  ``snapshots``: the live workers' metrics snapshots (None: this
    process alone)."""
    start_board(routes, metrics, loop)
    source = snapshots or (lambda: [metrics.snapshot()])
    return [(b"/status", StatusPage()), (b"/status.json", StatusJson(source))]
