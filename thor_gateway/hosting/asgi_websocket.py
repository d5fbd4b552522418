"""The ASGI ``websocket`` scope (ASGI "HTTP & WebSocket" spec 2.4) on the Thor loop.

Theory of operation.  A WebSocket handshake routed to an ASGI app becomes an
:class:`AsgiWebSocket`.  The handshake is checked on the loop thread first (a bad one gets
400, or 426 for another version, RFC 6455 §4.4, and never reaches the app).  The app then
runs on the handler's asyncio loop, as HTTP requests do, and the two sides talk through the
same two thread-safe doors (``handler.outbox.post`` towards asyncio, ``handler.to_thor``
back).  Thor-side methods are ``t_*``, asyncio-side ``a_*``.

- ``receive()``: ``websocket.connect`` first; after ``websocket.accept``, each message as
  ``websocket.receive``; ``websocket.disconnect`` with the close code once the socket is
  gone (1005 when the peer's close frame had none, 1006 without a closing handshake).
- ``send()``: ``websocket.accept`` answers 101 (subprotocol and headers from the message);
  ``websocket.close`` before it answers 403 (the spec's rule), after it starts the closing
  handshake; ``websocket.http.response.start`` / ``.body`` before it (the Denial Response
  extension) answer with an ordinary HTTP response.  After the socket is gone, ``send()``
  raises ``ClientDisconnected``.
- Backpressure: received messages waiting for the app above ``queue_high_water`` bytes
  pause reading (TCP then stops the peer); ``send()`` waits while the socket's write buffer
  is over its mark (its ``pause`` event).
- An app that returns without accepting: 403; that raises before accepting: 500; that
  returns or raises after accepting: close 1000 or 1011.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from thor.http.error import HttpError
from thor.http.exchange import Exchange
from thor.websocket.protocol import HandshakeError
from thor.websocket.server import accept, read_handshake, refuse
from thor.websocket.websocket import WebSocket
from thor_gateway.hosting.asgi import AppResponseError, ClientDisconnected, Message, encode_start
from thor_gateway.routing.request import Request

if TYPE_CHECKING:
    from thor_gateway.hosting.asgi import AsgiHandler

__all__ = ["AsgiWebSocket", "websocket_scope"]

log = logging.getLogger("thor_gateway.asgi")

# ASGI spec: a close before accept is an HTTP 403.
_FORBIDDEN = b"403 Forbidden\n"


def websocket_scope(http_scope: dict[str, Any], subprotocols: list[str]) -> dict[str, Any]:
    """The ``websocket`` scope made from the ``http`` scope the request would have had."""
    scope = dict(http_scope)
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] == "https" else "ws"
    scope["subprotocols"] = subprotocols
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


class _Phase(enum.Enum):
    """Where the socket is, as the app sees it (asyncio side)."""

    CONNECTING = "connecting"  # websocket.connect not yet received
    HANDSHAKE = "handshake"  # the app decides: accept, close (403) or a denial response
    DENYING = "denying"  # websocket.http.response.start sent; body to come
    OPEN = "open"  # accepted
    CLOSED = "closed"  # the app sent websocket.close, or the response is over
    GONE = "gone"  # the socket is gone: send() raises


_CONNECTING, _HANDSHAKE, _DENYING, _OPEN, _CLOSED, _GONE = _Phase


class AsgiWebSocket:
    """One WebSocket under an ASGI app."""

    queue_high_water = 1024 * 1024  # bytes of received messages waiting for the app

    def __init__(
        self, handler: AsgiHandler, exchange: Exchange, request: Request, scope: dict[str, Any]
    ) -> None:
        self.handler = handler
        self.exchange = exchange
        self.request = request
        self.scope = scope
        self.websocket: WebSocket | None = None
        # Thor side.
        self.t_queued = 0
        self.t_paused = False
        self.t_gone = False
        # asyncio side.
        self.a_phase = _CONNECTING
        self.a_inbox: deque[Message] = deque()
        self.a_waiter: asyncio.Future[None] | None = None
        self.a_send_paused = False
        self.a_send_waiter: asyncio.Future[None] | None = None
        self.a_deny_start: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.a_failing_flag = False  # the socket waits for the app before failing
        self.a_deny_sent = False  # the denial's head went to Thor (its body streams)
        exchange.on("done", self.t_done)
        handler.websockets.add(self)
        handler.outbox.post(self.a_start_app)

    @classmethod
    def serve(
        cls, handler: AsgiHandler, exchange: Exchange, request: Request, scope: dict[str, Any]
    ) -> None:
        """Check the handshake (refused here when invalid), then run the app."""
        try:
            checked = read_handshake(exchange)
        except HandshakeError as error:
            log.info("websocket handshake refused (%d): %s", error.status, error.detail)
            refuse(exchange, error)
            return
        cls(handler, exchange, request, websocket_scope(scope, checked.subprotocols))

    # ------------------------------------------------------------- Thor side

    def t_done(self, completed: bool) -> None:
        if not completed and self.websocket is None:  # the client left during the handshake
            self.t_gone = True
            self.handler.websockets.discard(self)
            self.handler.outbox.post(self.a_closed, 1006, "")

    def t_accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        if self.t_gone:
            return
        options = self.handler.websocket_options
        websocket = accept(
            self.exchange,
            subprotocols=[subprotocol] if subprotocol else (),
            headers=headers,
            **options,
        )
        if websocket is None:  # cannot happen: the handshake was checked; keep it safe
            self.t_gone = True
            self.handler.websockets.discard(self)
            self.handler.outbox.post(self.a_closed, 1006, "")
            return
        self.websocket = websocket
        websocket.on("message", self.t_message)
        websocket.on("pause", self.t_write_pause)
        websocket.on("close", self.t_close)
        websocket.defer_failure = self.t_failing

    def t_message(self, data: str | bytes) -> None:
        self.t_queued += len(data)
        if not self.t_paused and self.t_queued > self.queue_high_water:
            self.t_paused = True
            assert self.websocket is not None
            self.websocket.pause(True)
        self.handler.outbox.post(self.a_message, data)

    def t_received(self, size: int) -> None:
        self.t_queued -= size
        if self.t_paused and self.t_queued <= self.queue_high_water // 4:
            self.t_paused = False
            if self.websocket is not None:
                self.websocket.pause(False)

    def t_failing(self) -> None:
        """The peer broke the protocol: let the app answer what came before, then fail."""
        self.handler.outbox.post(self.a_failing)

    def t_app_idle(self) -> None:
        if self.websocket is not None:
            self.websocket.fail_now()

    def t_write_pause(self, paused: bool) -> None:
        self.handler.outbox.post(self.a_write_pause, paused)

    def t_close(self, code: int, reason: str) -> None:
        self.t_gone = True
        self.handler.websockets.discard(self)
        report = self.handler.websocket_closed
        if report is not None and self.websocket is not None:
            report(self.exchange, self.request, self.websocket)
        self.handler.outbox.post(self.a_closed, code, reason)

    def t_send(self, data: str | bytes) -> None:
        websocket = self.websocket
        if websocket is not None:
            if isinstance(data, str):
                websocket.send_text(data)
            else:
                websocket.send_bytes(data)

    def t_close_socket(self, code: int, reason: str) -> None:
        if self.websocket is not None:
            self.websocket.close(code, reason)

    def t_respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole HTTP answer to the handshake (403 for a close, or a denial response)."""
        if self.t_gone or self.exchange.started:
            return
        self.t_gone = True
        self.handler.websockets.discard(self)
        try:
            self.exchange.respond(status, b"", headers, body)
        except HttpError:
            log.exception("the ASGI app's denial response was refused by the server")
            self.exchange.abort()

    def t_response_start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if not self.t_gone:
            self.exchange.response_start(status, b"", headers)

    def t_response_body(self, body: bytes, more: bool) -> None:
        if self.t_gone:
            return
        if body:
            self.exchange.response_body(body)
        if not more:
            self.t_gone = True
            self.handler.websockets.discard(self)
            self.exchange.response_done([])

    def t_app_ended(self, failed: bool) -> None:
        """The app returned (or raised): answer or close whatever it left open."""
        websocket = self.websocket
        if websocket is not None:
            websocket.close(1011 if failed else 1000, "")
        elif not self.t_gone and not self.exchange.started:
            if failed:
                self.t_respond(500, [(b"Content-Length", b"0")], b"")
            else:
                self.t_respond(403, _plain(_FORBIDDEN), _FORBIDDEN)
        elif not self.t_gone:
            self.t_gone = True
            self.handler.websockets.discard(self)
            self.exchange.abort()  # a denial response left unfinished

    def t_shutdown(self, code: int) -> None:
        """The server is stopping: close an open socket with ``code`` (1001, "going away")."""
        if self.websocket is not None:
            self.websocket.close(code, "server shutting down")

    # ---------------------------------------------------------- asyncio side

    def a_start_app(self) -> None:
        asyncio.get_running_loop().create_task(self.a_run())

    def _wake(self) -> None:
        waiter = self.a_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_sender(self) -> None:
        waiter = self.a_send_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def a_message(self, data: str | bytes) -> None:
        if type(data) is str:
            self.a_inbox.append({"type": "websocket.receive", "text": data})
        else:
            self.a_inbox.append({"type": "websocket.receive", "bytes": data})
        self._wake()

    def a_closed(self, code: int, reason: str) -> None:
        self.a_inbox.append({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.a_phase = _GONE
        self._wake()
        self._wake_sender()

    def a_failing(self) -> None:
        self.a_failing_flag = True
        if not self.a_inbox and self.a_waiter is not None:  # the app waits: all answered
            self.handler.to_thor(self.t_app_idle)

    def a_write_pause(self, paused: bool) -> None:
        self.a_send_paused = paused
        if not paused:
            self._wake_sender()

    async def receive(self) -> Message:
        if self.a_phase is _CONNECTING:
            self.a_phase = _HANDSHAKE
            return {"type": "websocket.connect"}
        inbox = self.a_inbox
        if not inbox and self.a_failing_flag:
            self.handler.to_thor(self.t_app_idle)  # what came before the error is answered
        while not inbox:
            self.a_waiter = asyncio.get_running_loop().create_future()
            await self.a_waiter
            self.a_waiter = None
        message = inbox.popleft()
        if message["type"] == "websocket.disconnect":
            inbox.append(message)  # every later receive() says it again
        else:
            data = message.get("text") or message.get("bytes") or b""
            self.handler.loop.run_in_loop(self.t_received, len(data))
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.a_phase is _GONE:
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.send":
            await self._send_data(message)
        elif kind == "websocket.accept":
            self._send_accept(message)
        elif kind == "websocket.close":
            self._send_close(message)
        elif kind == "websocket.http.response.start":
            if self.a_phase is not _HANDSHAKE and self.a_phase is not _CONNECTING:
                raise _app_error(f"{kind} in phase {self.a_phase.value}")
            status, _phrase, headers = encode_start(message)
            self.a_deny_start = (status, headers)
            self.a_phase = _DENYING
        elif kind == "websocket.http.response.body":
            self._send_denial_body(message)
        else:
            raise _app_error(f"unexpected message type {kind!r}")

    async def _send_data(self, message: Message) -> None:
        if self.a_phase is not _OPEN:
            raise _app_error(f"websocket.send in phase {self.a_phase.value}")
        text, data = message.get("text"), message.get("bytes")
        if text is not None:
            if type(text) is not str:
                raise _app_error("websocket.send text must be str")
            self.handler.to_thor(self.t_send, text)
        elif type(data) is bytes:
            self.handler.to_thor(self.t_send, data)
        else:
            raise _app_error("websocket.send needs text (str) or bytes (bytes)")
        while self.a_send_paused and self.a_phase is _OPEN:
            self.a_send_waiter = asyncio.get_running_loop().create_future()
            await self.a_send_waiter
            self.a_send_waiter = None

    def _send_accept(self, message: Message) -> None:
        if self.a_phase is not _HANDSHAKE and self.a_phase is not _CONNECTING:
            raise _app_error(f"websocket.accept in phase {self.a_phase.value}")
        headers = _headers(message.get("headers", ()))
        self.a_phase = _OPEN
        self.handler.to_thor(self.t_accept, message.get("subprotocol"), headers)

    def _send_close(self, message: Message) -> None:
        phase = self.a_phase
        code = message.get("code", 1000)
        reason = message.get("reason") or ""
        if phase is _OPEN:
            self.a_phase = _CLOSED
            self.handler.to_thor(self.t_close_socket, code, reason)
        elif phase is _HANDSHAKE or phase is _CONNECTING:
            # ASGI spec: a close before accept is an HTTP 403.
            self.a_phase = _CLOSED
            self.handler.to_thor(self.t_respond, 403, _plain(_FORBIDDEN), _FORBIDDEN)
        elif phase is _DENYING:
            raise _app_error("websocket.close during a denial response")

    def _send_denial_body(self, message: Message) -> None:
        start = self.a_deny_start
        if self.a_phase is not _DENYING or start is None:
            raise _app_error("websocket.http.response.body before its start")
        body = message.get("body", b"")
        if type(body) is not bytes:
            raise _app_error("body must be bytes")
        more = bool(message.get("more_body", False))
        if not more:
            self.a_phase = _CLOSED
        if not self.a_deny_sent and not more:
            self.handler.to_thor(self.t_respond, start[0], start[1], body)
            return
        if not self.a_deny_sent:
            self.a_deny_sent = True
            self.handler.to_thor(self.t_response_start, *start)
        self.handler.to_thor(self.t_response_body, body, more)

    async def a_run(self) -> None:
        failed = False
        try:
            await self.handler.app(self.scope, self.receive, self.send)
        except Exception as exc:
            if not isinstance(exc, ClientDisconnected):
                failed = True
                log.error("error in ASGI app for websocket %s", self.scope["path"], exc_info=exc)
        self.handler.loop.run_in_loop(self.t_app_ended, failed)


def _plain(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", b"%d" % len(body)),
    ]


def _headers(fields: Any) -> list[tuple[bytes, bytes]]:
    return encode_start({"status": 200, "headers": fields})[2]


def _app_error(text: str) -> HttpError:
    return AppResponseError(text)
