"""ASGI 3 (HTTP) on the Thor loop: the app runs on an asyncio loop in its own thread.

Theory of operation.  Each :class:`AsgiHandler` owns one asyncio event loop,
run by one dedicated thread; the Thor loop stays the IO loop.  Calls cross
between the two loops only through their thread-safe entry points: Thor ->
asyncio with ``call_soon_threadsafe``, asyncio -> Thor with ``run_in_loop``.

Hops are the cost (each is a wake-up and a GIL hand-off), so:

- Thor -> asyncio calls made during one Thor loop iteration (request starts,
  body chunks, pauses, disconnects, for every exchange of the handler) go over
  as ONE ``call_soon_threadsafe`` (:class:`_Outbox`);
- a request without a body needs no hop for ``receive()``;
- ``http.response.start`` is held until the first ``http.response.body``, so
  a whole response (start, body, end) is one call posted to Thor, and the
  responses of one asyncio iteration wake the Thor loop once
  (``loop.post`` + ``loop.wake``).

Flow control both ways.  Request body: the exchange starts paused (so ``100
Continue`` is sent only when the app first calls ``receive()``); it is paused
again while more than ``body_high_water`` bytes wait for the app, and resumed
when ``receive()`` has drained them.  Response: ``send()`` of a body with
``more_body`` waits while the exchange says ``pause(True)`` or more than
``window`` bytes are on their way to the exchange.

Endings.  ``receive()`` returns ``http.disconnect`` once the client left or
the request body broke, and after the response is complete.  ``send()`` after
the client left raises :class:`ClientDisconnected` (an ``OSError``, ASGI spec
2.4).  An app that raises gets a 500 if nothing was sent, else the connection
is aborted; an app that returns without a complete response likewise.

A GET with ``Upgrade: websocket`` gets the ``websocket`` scope instead
(:mod:`thor_gateway.hosting.asgi_websocket`, loaded on the first one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from thor.asyncio_loop import AsyncioLoop
from thor.http.error import HttpError
from thor.http.exchange import Exchange
from thor.http.protocol import abnf
from thor.loop import Loop
from thor.memo import Memo
from thor_gateway.hosting.lifespan import LifespanManager
from thor_gateway.hosting.wsgi import abort_exchange, answer_failure
from thor_gateway.routing.request import Done, Request, asks_websocket

__all__ = ["AsgiHandler", "ClientDisconnected"]

log = logging.getLogger("thor_gateway.asgi")

Message = MutableMapping[str, Any]
AsgiApp = Callable[..., Awaitable[None]]
Start = tuple[int, bytes, list[tuple[bytes, bytes]]]

# RFC 9110 §5.1 field-name = token; §5.5: no CR, LF, NUL or other CTL in a value.  The
# grammar is the library's (thor.http.protocol.abnf), anchored for match().
_NAME_RE = re.compile(abnf.TOKEN + rb"\Z")
_VALUE_RE = re.compile(abnf.FIELD_CHAR + rb"*\Z")
_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
# Seconds the app's tasks get to end after the lifespan shutdown, then again once cancelled.
TASK_GRACE = 1.0
# Valid header lists of http.response.start, encoded, by value (thor_gateway.memo).
_HEADER_LISTS: Memo[tuple[object, ...], tuple[tuple[bytes, bytes], ...]] = Memo(256)


class ClientDisconnected(OSError):
    """``send()`` after the client left (ASGI spec: a server-specific OSError)."""


class AppResponseError(HttpError):
    """The app sent an invalid message: the client gets a 500."""

    desc = "Invalid ASGI message from the application"
    status = 500


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def build_scope(request: Request, state: dict[str, Any]) -> dict[str, Any]:
    """The ``http`` scope of ``request`` (ASGI "HTTP & WebSocket" spec, 2.4)."""
    root_path = _text(request.script_name) if request.script_name else ""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},  # per scope: apps may write to it
        "http_version": request.http_version.decode("latin-1"),
        "method": request.method.decode("latin-1"),
        "scheme": request.scheme,
        # The path includes root_path (as uvicorn and Starlette expect).
        "path": root_path + _text(request.path_info),
        "raw_path": request.raw_path,
        "query_string": request.query,
        "root_path": root_path,
        "headers": [(name.lower(), value) for name, value in request.headers],
        "client": request.client,
        "server": request.server,
        "state": state,
        "extensions": {"http.response.trailers": {}},
    }


def encode_start(message: Message) -> Start:
    """``http.response.start`` as (status, phrase, headers); AppResponseError if invalid."""
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise AppResponseError(f"invalid status {status!r}")
    fields = message.get("headers", ())
    key, known = _HEADER_LISTS.lookup_items(fields)
    if known is not None:
        return status, _PHRASES.get(status, b""), list(known)
    headers: list[tuple[bytes, bytes]] = []
    for item in fields:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise AppResponseError(f"header {item!r} is not a (name, value) pair") from None
        if type(name) is not bytes or type(value) is not bytes:
            raise AppResponseError(f"header {item!r}: name and value must be bytes")
        if not _NAME_RE.match(name) or not _VALUE_RE.match(value):
            raise AppResponseError(f"invalid header {item!r}")
        headers.append((name, value))
    if key is not None:
        _HEADER_LISTS.put(key, tuple(headers))
    return status, _PHRASES.get(status, b""), headers


class _Input(enum.Enum):
    """The request body as the app sees it (asyncio side)."""

    UNREAD = "unread"  # a body is expected; paused until the first receive()
    OPEN = "open"  # more body may come
    ARRIVED = "arrived"  # all of it arrived; the final more_body=False not yet returned
    RETURNED = "returned"  # the app has seen more_body=False
    BROKEN = "broken"  # cut short (or the client left): receive() says http.disconnect


class _Output(enum.Enum):
    """The response as the app produced it (asyncio side)."""

    IDLE = "idle"  # nothing sent
    HELD = "held"  # http.response.start received, held for the first body message
    STREAMING = "streaming"  # started; more body to come
    TRAILERS = "trailers"  # the body is done; http.response.trailers still to come
    COMPLETE = "complete"  # the response is complete
    GONE = "gone"  # the client left before the end: send() raises


# Members as module names: an Enum attribute lookup costs 10x a global's in CPython 3.11,
# and these are read several times per request.
_UNREAD, _OPEN, _ARRIVED, _RETURNED, _BROKEN = _Input
_IDLE, _HELD, _STREAMING, _TRAILERS, _COMPLETE, _GONE = _Output


class _Outbox:
    """Thor -> asyncio calls, sent as one ``call_soon_threadsafe`` per Thor loop iteration."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self.aloop: asyncio.AbstractEventLoop | None = None  # set when the thread starts
        self.inline = False  # the Thor loop runs on ``aloop``: same thread, call directly
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        calls = self._calls
        calls.append((fn, args))
        if len(calls) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        calls = self._calls
        self._calls = []
        aloop = self.aloop
        if self.inline:
            _run_all(calls)
        elif aloop is not None and not aloop.is_closed():
            aloop.call_soon_threadsafe(_run_all, calls)


def _run_all(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
    for fn, args in calls:
        try:
            fn(*args)
        except Exception:
            log.exception("error in %r", fn)


class AsgiHandler:
    """Serve an ASGI 3 app; implements :class:`thor_gateway.routing.request.Handler`."""

    body_high_water = 256 * 1024
    window = 1024 * 1024
    # accept()'s limits and timers for WebSockets (the gateway sets them from --ws-*).
    websocket_options: dict[str, Any] = {}
    # Called with (exchange, request, websocket) when a WebSocket closed (the access log).
    websocket_closed: Callable[..., None] | None = None

    def __init__(self, app: AsgiApp, *, loop: Loop, lifespan: str = "auto") -> None:
        self.app = app
        self.loop = loop
        self.lifespan = LifespanManager(app, lifespan)
        self.outbox = _Outbox(loop)
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._shut_down = False
        self._wake_scheduled = False  # asyncio thread only
        self.websockets: set[Any] = set()  # AsgiWebSocket in progress (loop thread)

    def _asyncio_loop(self) -> asyncio.AbstractEventLoop:
        """The handler's asyncio loop, created and started in its thread on first use.

        Created lazily so that a handler that never serves leaves no loop to close.
        Only the Thor loop thread calls this (handle, startup, shutdown).
        """
        aloop = self._aloop
        if aloop is None and isinstance(self.loop, AsyncioLoop):
            # The server runs on an asyncio loop: the app shares its thread (no hops).
            aloop = self._aloop = self.outbox.aloop = self.loop.aloop
            self.outbox.inline = True
        if aloop is None:
            aloop = self._aloop = self.outbox.aloop = asyncio.new_event_loop()
            threading.Thread(
                target=self._run_aloop, args=(aloop,), name="thor-asgi", daemon=True
            ).start()
        return aloop

    @staticmethod
    def _run_aloop(aloop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(aloop)
        try:
            aloop.run_forever()
        finally:
            aloop.close()

    def handle(self, exchange: Exchange, request: Request) -> None:
        """Start serving ``request`` (loop thread, as its exchange arrives)."""
        self._asyncio_loop()
        state = (
            {**self.lifespan.state, **request.state} if request.state else dict(self.lifespan.state)
        )
        scope = build_scope(request, state)
        if request.method == b"GET" and asks_websocket(request.headers):
            from thor_gateway.hosting.asgi_websocket import AsgiWebSocket

            AsgiWebSocket.serve(self, exchange, request, scope)
            return
        _AsgiExchange(self, exchange, request, scope)

    def close_websockets(self, code: int) -> None:
        """Close every open WebSocket with ``code`` (1001 at shutdown, RFC 6455 §7.4.1)."""
        for websocket in list(self.websockets):
            websocket.t_shutdown(code)

    def to_thor(self, fn: Callable[..., Any], *args: Any) -> None:
        """Post ``fn(*args)`` to the Thor loop from the asyncio side, waking it once per batch.

        The wake-up waits for the end of this asyncio iteration (``call_soon``), so the
        responses of all the requests the app served in it cost one wake-up.
        """
        if self.outbox.inline:
            self.loop.call_soon(fn, *args)
            return
        self.loop.post(fn, *args)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake_thor)

    def _wake_thor(self) -> None:
        self._wake_scheduled = False
        self.loop.wake()

    def _run_coroutine(self, coro: Any, done: Done) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._asyncio_loop())

        def report(result: concurrent.futures.Future[None]) -> None:
            self.loop.run_in_loop(done, result.exception())

        future.add_done_callback(report)

    def startup(self, done: Done) -> None:
        """Run the lifespan startup; ``done(exc)`` on the loop thread when it failed."""
        self._run_coroutine(self.lifespan.startup(), done)

    def shutdown(self, done: Done) -> None:
        """Run the lifespan shutdown, then stop the asyncio loop (once; later calls: done)."""
        aloop = self._aloop
        if self._shut_down or aloop is None:
            self._shut_down = True
            done(None)
            return
        self._shut_down = True

        def stopped(exc: BaseException | None) -> None:
            if self.outbox.inline:  # an inline loop is the server's: not ours to stop
                done(exc)
                return

            def ended(_: BaseException | None) -> None:
                aloop.call_soon_threadsafe(aloop.stop)
                done(exc)

            self._run_coroutine(_end_tasks(TASK_GRACE), ended)

        self._run_coroutine(self.lifespan.shutdown(), stopped)


async def _end_tasks(grace: float) -> None:
    """Let what the app still runs end before its loop closes: a WebSocket consumer told of
    its disconnect may still be unwinding. Waited for ``grace`` seconds, then cancelled and
    waited for again; a task the closed loop destroyed would log a spurious traceback."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)


class _AsgiExchange:
    """One request: Thor-side listeners (``t_*``) and the asyncio side (``receive``/``send``)."""

    # Defaults as class attributes: one exchange per request, most never change them.
    # Thor side (loop thread only).
    t_buffered = 0  # bytes given to asyncio and not yet received by the app
    t_gone = False
    # asyncio side (asyncio thread only).
    a_chunks: deque[bytes] | tuple[()] = ()  # a deque once a body is expected
    a_output = _IDLE
    a_waiter: asyncio.Future[None] | None = None
    a_start: Message | None = None
    a_start_encoded: Start | None = None
    a_paused = False  # the client is not reading: send() waits
    a_inflight = 0
    a_send_waiter: asyncio.Future[None] | None = None

    def __init__(
        self, handler: AsgiHandler, exchange: Exchange, request: Request, scope: Any
    ) -> None:
        self.handler = handler
        self.exchange = exchange
        self.scope = scope
        # The server knows the framing: a request without a body is complete already.
        has_body = not exchange.req_complete
        self.t_body_paused = has_body
        self.t_body_complete = not has_body
        self.a_input = _UNREAD if has_body else _ARRIVED
        exchange.on("done", self.t_done)
        exchange.on("pause", self.t_pause)
        if has_body:  # without a body, t_error has nothing to do
            exchange.on("error", self.t_error)
            self.a_chunks = deque()
            exchange.on("request_body", self.t_body)
            exchange.on("request_done", self.t_body_done)
            exchange.pause_request_body(True)
        handler.outbox.post(self.a_start_app)

    # ------------------------------------------------------------- Thor side

    def t_body(self, chunk: bytes) -> None:
        self.t_buffered += len(chunk)
        if not self.t_body_paused and self.t_buffered > self.handler.body_high_water:
            self.t_body_paused = True
            self.exchange.pause_request_body(True)
        self.handler.outbox.post(self.a_body, chunk)

    def t_body_done(self, _trailers: object) -> None:
        self.t_body_complete = True
        self.handler.outbox.post(self.a_body_end)

    def t_received(self, size: int) -> None:
        """The app took ``size`` buffered bytes (or asks for the first ones, size 0)."""
        self.t_buffered -= size
        if self.t_body_paused and self.t_buffered <= self.handler.body_high_water // 4:
            self.t_body_paused = False
            self.exchange.pause_request_body(False)

    def t_error(self, error: BaseException) -> None:
        # The body broke, or the client half-closed after a whole request: then the
        # response can still go out, and only 'done'(False) means it left.
        log.debug("exchange error: %s", error)
        if not self.t_body_complete:
            self.handler.outbox.post(self.a_disconnect, False)

    def t_done(self, completed: bool) -> None:
        if not completed:
            self.t_gone = True
            self.handler.outbox.post(self.a_disconnect, True)

    def t_pause(self, paused: bool) -> None:
        self.handler.outbox.post(self.a_pause, paused)

    def t_respond(self, start: Start | None, body: bytes, more: bool) -> None:
        if self.t_gone:
            return
        exchange = self.exchange
        try:
            if start is not None and not more:
                exchange.respond(*start, body)
                return
            if start is not None:
                exchange.response_start(*start)
            if body:
                exchange.response_body(body)
            if not more:
                exchange.response_done([])
        except HttpError:
            log.exception("the ASGI app's response was refused by the server")
            answer_failure(exchange)
            return
        if more:
            self.handler.outbox.post(self.a_delivered, len(body))

    def t_fail(self) -> None:
        if not self.t_gone:
            answer_failure(self.exchange)

    def t_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if self.t_gone:
            return
        try:
            self.exchange.response_done(trailers)
        except HttpError:
            log.exception("the ASGI app's trailers were refused by the server")
            abort_exchange(self.exchange)

    def t_abort(self) -> None:
        if not self.t_gone and not self.exchange.res_done:
            abort_exchange(self.exchange)

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

    def a_body(self, chunk: bytes) -> None:
        self.a_chunks.append(chunk)  # type: ignore[union-attr]  # a deque: a body is expected
        self._wake()

    def a_body_end(self) -> None:
        if self.a_input in (_UNREAD, _OPEN):
            self.a_input = _ARRIVED
        self._wake()

    def a_disconnect(self, gone: bool) -> None:
        """The client left (``gone``) or the request body broke.

        A body that arrived whole is still handed over (ending with more_body=False);
        the next receive() then says http.disconnect.
        """
        if self.a_input in (_UNREAD, _OPEN):
            self.a_input = _BROKEN
        if gone and self.a_output is not _COMPLETE:
            self.a_output = _GONE
            self._wake_sender()
        self._wake()

    def a_pause(self, paused: bool) -> None:
        self.a_paused = paused
        if not paused:
            self._wake_sender()

    def a_delivered(self, size: int) -> None:
        self.a_inflight -= size
        self._wake_sender()

    async def receive(self) -> Message:
        while True:
            chunks = self.a_chunks
            if chunks:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()  # not empty, so a deque
                self.handler.loop.run_in_loop(self.t_received, len(body))
                final = self.a_input is _ARRIVED
                if final:
                    self.a_input = _RETURNED
                return {"type": "http.request", "body": body, "more_body": not final}
            state = self.a_input
            output = self.a_output
            if state is _BROKEN or output is _GONE or (state is _RETURNED and output is _COMPLETE):
                return {"type": "http.disconnect"}
            if state is _ARRIVED:
                self.a_input = _RETURNED
                return {"type": "http.request", "body": b"", "more_body": False}
            if state is _UNREAD:
                # The body starts paused: resuming it sends 100 Continue (RFC 9110 §10.1.1).
                self.a_input = _OPEN
                self.handler.loop.run_in_loop(self.t_received, 0)
            self.a_waiter = asyncio.get_running_loop().create_future()
            await self.a_waiter
            self.a_waiter = None

    async def send(self, message: Message) -> None:
        output = self.a_output
        if output is _GONE:
            raise ClientDisconnected("the client disconnected")
        kind = message["type"]
        if kind == "http.response.start":
            if output is not _IDLE:
                raise AppResponseError("http.response.start sent twice")
            # Validated now, so that the app's send() raises; kept encoded for the body.
            self.a_start_encoded = encode_start(message)
            self.a_start = message
            self.a_output = _HELD
        elif kind == "http.response.body":
            await self._send_body(message)
        elif kind == "http.response.trailers":
            self._send_trailers(message)
        else:
            raise AppResponseError(f"unexpected message type {kind!r}")

    async def _send_body(self, message: Message) -> None:
        output = self.a_output
        if output is _COMPLETE:
            raise AppResponseError("http.response.body after the response was complete")
        if output is _IDLE or self.a_start is None:
            raise AppResponseError("http.response.body before http.response.start")
        body = message.get("body", b"")
        if type(body) is not bytes:
            raise AppResponseError(f"body must be bytes, not {type(body).__name__}")
        start = self.a_start_encoded if output is _HELD else None
        more = bool(message.get("more_body", False))
        if more:
            self.a_output = _STREAMING
        elif self.a_start.get("trailers"):
            self.a_output = _TRAILERS
        else:
            self.a_output = _COMPLETE
            self._wake()  # a receive() waiting for the end now returns http.disconnect
        # With trailers to come, the response stays open after this body.
        open_ended = more or self.a_output is _TRAILERS
        if open_ended:
            self.a_inflight += len(body)  # t_respond reports it delivered
        self.handler.to_thor(self.t_respond, start, body, open_ended)
        while more and (self.a_paused or self.a_inflight > self.handler.window):
            if self.a_output is _GONE:
                raise ClientDisconnected("the client disconnected")
            self.a_send_waiter = asyncio.get_running_loop().create_future()
            await self.a_send_waiter
            self.a_send_waiter = None

    def _send_trailers(self, message: Message) -> None:
        """``http.response.trailers`` (the ASGI trailers extension): ends the response."""
        if self.a_output is not _TRAILERS:
            raise AppResponseError("http.response.trailers without trailers=True or before the end")
        if message.get("more_trailers", False):
            raise AppResponseError("more_trailers=True is not supported: send them at once")
        _, _, trailers = encode_start({"status": 200, "headers": message.get("headers", ())})
        self.a_output = _COMPLETE
        self._wake()
        self.handler.loop.run_in_loop(self.t_trailers, trailers)

    async def a_run(self) -> None:
        try:
            await self.handler.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            log.debug("client gone; the app stopped")
            return
        except Exception as exc:
            method, path = self.scope["method"], self.scope["path"]
            log.error("error in ASGI app for %s %s", method, path, exc_info=exc)
            self.handler.loop.run_in_loop(self.t_fail)
            return
        output = self.a_output
        if output is _STREAMING or output is _TRAILERS:
            log.error("the ASGI app returned before completing its response")
            self.handler.loop.run_in_loop(self.t_abort)
        elif output is _IDLE or output is _HELD:
            log.error("the ASGI app returned without sending a response")
            self.handler.loop.run_in_loop(self.t_fail)
