"""``--request-timeout``: a deadline for each request to a mounted app.

Theory of operation.  :class:`Deadline` wraps a handler.  When a request is
dispatched, it arms one loop timer; the exchange's ``done`` event disarms it.
If the timer fires first:

- no response has started: the gateway answers ``504 Gateway Timeout`` itself
  (RFC 9110 §15.6.5: the gateway, acting for the app, got no timely answer),
  closing the connection when the request body has not all arrived;
- a response has started: it cannot be replaced, so the exchange is aborted
  and the client sees the response cut short, never taken as whole.

Either way the exchange is finished, so whatever the app sends afterwards is
dropped by the exchange (its ``response_*`` calls do nothing once it is
done), and the adapters see ``done`` as they do when a client leaves.  A WSGI
app's thread cannot be stopped (Python cannot kill a thread): it runs to its
end and its output is discarded; an ASGI app is told ``http.disconnect``.  A
loop stuck in an app is the worker ``--timeout``'s business
(:mod:`thor_gateway.serving.workers`), not this one's: a stuck loop fires no
timer.

Without ``--request-timeout`` the handlers are not wrapped: the hot path pays
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from thor_gateway.routing.errors import GatewayError
from thor_gateway.routing.request import Request

__all__ = ["Deadline", "RequestTimeoutError"]

log = logging.getLogger("thor_gateway.routing")


class RequestTimeoutError(GatewayError):
    """The app did not start its response within --request-timeout."""

    desc = "Gateway Timeout"
    status = 504


class Deadline:
    """A handler whose requests end after ``seconds`` (see the module docstring)."""

    def __init__(self, handler: Any, seconds: float, loop: Any) -> None:
        self.handler = handler
        self.seconds = seconds
        self.loop = loop
        # A proxy route may tunnel CONNECT; the wrapper must not hide that.
        self.accepts_connect = bool(getattr(handler, "accepts_connect", False))

    def handle(self, exchange: Any, request: Request) -> None:
        timer = self.loop.schedule(self.seconds, self._expire, exchange, request)
        exchange.on("done", lambda completed: timer.delete())
        self.handler.handle(exchange, request)

    def _expire(self, exchange: Any, request: Request) -> None:
        method = request.method.decode("latin-1")
        where = request.target.decode("latin-1")
        if exchange.started:
            log.warning("request timeout (%ss): %s %s cut short", self.seconds, method, where)
            exchange.abort()
            return
        log.warning("request timeout (%ss): %s %s answered 504", self.seconds, method, where)
        answer = RequestTimeoutError().as_response(())
        exchange.response_start(answer.status, answer.phrase, answer.headers)
        exchange.response_body(answer.body)
        # The rest of an unread body would be taken for the next request (RFC 9112 §9.6).
        exchange.response_done([], close=not exchange.req_complete)

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        self.handler.startup(done)

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        self.handler.shutdown(done)

    def __getattr__(self, name: str) -> Any:
        # Everything else (upstream_samples, settings...) is the wrapped handler's.
        return getattr(self.handler, name)
