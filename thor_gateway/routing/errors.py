"""The gateway's own errors, one class per cause, and how they are answered.

Each class carries the status the gateway answers with (``thor.http.error``
style: ``status``, ``desc``, ``detail``).  :func:`respond` sends the small
plain-text error response that :meth:`thor.http.error.HttpError.as_response` builds;
it never echoes request data back (no reflected markup, nothing to escape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from thor.http.error import HttpError

__all__ = [
    "ConcurrencyLimitError",
    "ConnectNotAllowedError",
    "DrainingError",
    "GatewayError",
    "RouteNotFoundError",
    "respond",
    "when_complete",
]


class GatewayError(HttpError):
    """A request the gateway itself refuses."""

    desc = "Gateway Error"
    status = 500


class RouteNotFoundError(GatewayError):
    """No mount matches the path (and nothing is mounted at '/')."""

    desc = "Not Found"
    status = 404


class ConnectNotAllowedError(GatewayError):
    """CONNECT to an origin server: only a proxy route may accept it (RFC 9110 §9.3.6)."""

    desc = "Method Not Allowed"
    status = 405


class DrainingError(GatewayError):
    """The worker is shutting down (readiness probe)."""

    desc = "Draining"
    status = 503


class ConcurrencyLimitError(GatewayError):
    """More requests in progress than --limit-concurrency allows."""

    desc = "Service Unavailable"
    status = 503


class _Responder(Protocol):
    def response_start(
        self, status: int, phrase: str | bytes, headers: list[tuple[bytes, bytes]]
    ) -> None: ...
    def response_body(self, chunk: bytes) -> None: ...
    def response_done(
        self, trailers: list[tuple[bytes, bytes]] = ..., close: bool = ...
    ) -> None: ...


def respond(
    exchange: _Responder,
    error: HttpError,
    *,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer ``error`` on ``exchange`` as a short text/plain response.

    The answer waits for the end of the request (see :func:`when_complete`).
    """
    when_complete(exchange, lambda: _send(exchange, error, close, extra))


def when_complete(exchange: Any, action: Callable[[], None]) -> None:
    """Run ``action`` once the request has been read.

    Answering before then would cost the connection (the server closes it, as
    the rest of the body would be taken for the next request); a request
    without a body is complete as soon as its header is, so the wait is only
    for bodies, which the server reads and drops.  If the request breaks
    instead, there is no one to answer.
    """
    if exchange.req_complete:
        action()
    else:
        exchange.once("request_done", lambda trailers: action())


def _send(
    exchange: _Responder,
    error: HttpError,
    close: bool,
    extra: list[tuple[bytes, bytes]] | None,
) -> None:
    answer = error.as_response(extra or ())
    exchange.response_start(answer.status, answer.phrase, answer.headers)
    exchange.response_body(answer.body)
    exchange.response_done([], close=close)
