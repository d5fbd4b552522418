"""WSGI (PEP 3333) on the Thor loop: apps run in a thread pool, sockets stay on the loop.

Theory of operation.  :meth:`WsgiHandler.handle` runs on the loop thread: it
builds the environ, listens to the exchange and submits a :class:`_WsgiTask` to
the bounded :class:`~thor_gateway.threadpool.ThreadPool` (saturated: 503 at
once): at once for a request without a body, and, by default, once the body
has arrived whole for one with a body, so a slow client never holds a thread.
The task runs the app in a worker thread and hands every result back with
``loop.run_in_loop``; only the loop thread calls the exchange.

Hand-offs are the cost of this design (each one is a GIL switch), so a response
takes as few as possible:

- an app that returns a list or tuple (the common case) is answered with ONE
  call on the loop thread: status, headers, the joined body (with a
  ``Content-Length`` when the app gave none) and the end;
- a streamed response takes one call per non-empty chunk, the headers riding
  with the first chunk (PEP 3333: headers go out with the first non-empty
  chunk), and one for the end;
- the last call of a response is posted without waking the loop: the pool
  wakes it once when the worker runs out of tasks (see
  :mod:`thor_gateway.hosting.threadpool`), so a burst of responses costs one wake-up.

Backpressure on the response: the worker stops producing while the exchange
says ``pause(True)`` (the client is not reading) or while more than
``window`` bytes are posted but not yet handed to the exchange.  Memory per
response is so bounded by the window plus the connection's write buffer.

The request body is received on the loop before the app is submitted
(:mod:`thor_gateway.hosting.wsgi_spool`: a slow upload costs memory, never a thread),
or, with ``buffer_input=False``, streamed to the app as it arrives
(:mod:`thor_gateway.hosting.wsgi_input`); the environ is
:mod:`thor_gateway.hosting.wsgi_environ`.  The iterable's ``close()`` is always called:
after a complete response, after an app error, and when the client left (the
worker notices at its next chunk and stops iterating).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from thor.http.error import HttpError, ServiceUnavailableError
from thor.http.exchange import Exchange
from thor.loop import Loop
from thor_gateway.hosting.threadpool import ThreadPool
from thor_gateway.hosting.wsgi_environ import ErrorStream, build_environ
from thor_gateway.hosting.wsgi_input import BodyStream, EmptyBody, LazyCondition, RequestBodyError
from thor_gateway.hosting.wsgi_output import (
    AppOutputError,
    StartResponseError,
    encode_headers,
    encode_status,
    has_length,
)
from thor_gateway.hosting.wsgi_spool import SpooledBody
from thor_gateway.routing.request import Done, Request, asks_websocket

__all__ = [
    "AppOutputError",
    "StartResponseError",
    "WsgiHandler",
    "encode_headers",
    "encode_status",
]

log = logging.getLogger("thor_gateway.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WsgiApp = Callable[..., Iterable[bytes]]
Start = tuple[int, bytes, list[tuple[bytes, bytes]]]

# RFC 9110 §8.6: no Content-Length on these.
_NO_LENGTH = frozenset({204, 304})


class _ClientGone(Exception):
    """The exchange ended (the client left); stop producing the response."""


class _Phase(enum.Enum):
    WAITING = "waiting"  # start_response() not called yet
    READY = "ready"  # status and headers set, nothing sent
    INVALID = "invalid"  # the app's status or headers were rejected: answer 500
    STARTED = "started"  # headers posted to the loop
    DONE = "done"  # the end of the response posted


# Members as module names: an Enum attribute lookup costs 10x a global's in CPython 3.11,
# and these are read several times per request.
_WAITING, _READY, _INVALID, _STARTED, _DONE = _Phase


def _small_body(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """A Content-Length body of at most ``limit`` bytes, sent without Expect: 100-continue."""
    length = -1
    for name, value in headers:
        lower = name.lower()
        if lower == b"expect":
            return False
        if lower == b"content-length":
            length = int(value)
    return 0 <= length <= limit


class WsgiHandler:
    """Serve a WSGI app; implements :class:`thor_gateway.routing.request.Handler`."""

    # Bytes posted to the loop and not yet given to the exchange, per response.
    window = 1024 * 1024
    # How long a worker waits for the loop (body data, response drain) before it
    # gives up on an exchange the server never reported as ended.
    stall_limit = 300.0
    retry_after = b"1"

    def __init__(
        self,
        app: WsgiApp,
        *,
        threads: int = 8,
        max_queue: int = 64,
        loop: Loop,
        multiprocess: bool = False,
        buffer_input: bool = True,
        input_memory: int = 1024 * 1024,
    ) -> None:
        self.app = app
        self.loop = loop
        self.multiprocess = multiprocess
        # Receive a request body whole before the app runs (True), or stream it to the app.
        self.buffer_input = buffer_input
        self.input_memory = input_memory  # bytes of a buffered body kept in memory
        # The workers post whole responses quietly and wake the loop once per burst.
        self.pool = ThreadPool(threads, max_queue, name="thor-wsgi", loop=loop, on_idle=loop.wake)

    def handle(self, exchange: Exchange, request: Request) -> None:
        """Start serving ``request`` (loop thread, as its exchange arrives)."""
        if self.pool.full:
            self._refuse(exchange, request)
            return
        if request.method == b"GET" and asks_websocket(request.headers):
            refuse_websocket(exchange, request)
            return
        if exchange.req_complete:  # the server knows the framing: no body to come
            body = None
        elif self.buffer_input:
            self._gather(exchange, request)
            return
        else:
            body = self._body_stream(exchange)
        environ = build_environ(
            request,
            wsgi_input=body if body is not None else EmptyBody(),
            errors=ErrorStream(),
            multiprocess=self.multiprocess,
        )
        task = _WsgiTask(self, exchange, environ, body, request.method == b"HEAD")
        exchange.on("pause", task.on_pause)
        if body is not None:  # without a body an error means nothing to the task
            exchange.on("error", task.on_error)
        exchange.on("done", task.on_done)
        if body is not None and _small_body(request.headers, body.high_water):
            # A small body the client sends at once: run the app when it is all here,
            # so the worker never waits for it (one thread hop less per request).
            exchange.on("request_done", lambda _trailers: self._submit(task, exchange, request))
            return
        # Only the loop thread submits, so the pool cannot have filled up since the check.
        self.pool.submit(task.run)

    def _gather(self, exchange: Exchange, request: Request) -> None:
        """Receive the body on the loop, then submit the app (see wsgi_spool)."""
        spool = SpooledBody(self.input_memory)
        environ = build_environ(
            request, wsgi_input=EmptyBody(), errors=ErrorStream(), multiprocess=self.multiprocess
        )
        task = _WsgiTask(self, exchange, environ, None, request.method == b"HEAD")

        def complete(_trailers: object) -> None:
            if exchange.res_done:  # answered while the body came: no app to run
                spool.close()
                return
            # The length is known now, chunked or not: frameworks that read CONTENT_LENGTH
            # (and not wsgi.input_terminated) see the whole body.
            environ["CONTENT_LENGTH"] = str(spool.size)
            environ["wsgi.input"] = spool.stream()
            task.spool = spool  # the worker closes it
            self._submit(task, exchange, request)

        def ended(completed: bool) -> None:
            if task.spool is None:  # the app never got it
                spool.close()

        exchange.on("request_body", spool.feed)
        exchange.on("request_done", complete)
        exchange.on("pause", task.on_pause)
        exchange.on("error", task.on_error)
        exchange.on("done", task.on_done)
        exchange.on("done", ended)

    def _submit(self, task: _WsgiTask, exchange: Exchange, request: Request) -> None:
        if not self.pool.submit(task.run):
            if task.spool is not None:
                task.spool.close()
                task.spool = None
            self._refuse(exchange, request)

    def _refuse(self, exchange: Exchange, request: Request) -> None:
        log.warning(
            "WSGI pool saturated (%d threads, %d queued): 503 for %s %s",
            self.pool.threads,
            self.pool.max_queue,
            request.method.decode("latin-1"),
            request.target.decode("latin-1"),
        )
        exchange.on("error", lambda error: None)  # the body we do not read may break
        respond_error(exchange, ServiceUnavailableError(), [(b"Retry-After", self.retry_after)])

    def _body_stream(self, exchange: Exchange) -> BodyStream:
        body = BodyStream(self.loop.run_in_loop, exchange.pause_request_body, self.stall_limit)
        exchange.on("request_body", body.feed)
        exchange.on("request_done", body.finish)
        if exchange.expect_continue:
            body.start_paused()
        return body

    def startup(self, done: Done) -> None:
        """Nothing to prepare: threads start on demand."""
        done(None)

    def shutdown(self, done: Done) -> None:
        """Stop the worker threads once their queued tasks are done (without blocking the loop)."""
        self.pool.shutdown(wait=False)
        done(None)


def respond_error(
    exchange: Exchange, error: HttpError, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A small plain-text error response, its body the reason phrase (loop thread)."""
    answer = error.as_response(extra, error.server_status[1] + b"\n")
    exchange.response_start(answer.status, answer.phrase, answer.headers)
    exchange.response_body(answer.body)
    exchange.response_done([])


def abort_exchange(exchange: Exchange) -> None:
    """Cut the connection of a response that cannot be completed (loop thread).

    The client sees the connection end before the framing said the response was
    complete, so a truncated response is never taken for a whole one.  What was
    already produced is flushed first: the client sees how far the response got.
    """
    exchange.abort()


class WebSocketUnsupportedError(HttpError):
    """A WebSocket handshake to a WSGI app: WSGI has no way to hold a connection open.

    403, as RFC 6455 §4.2.2 suggests for a server that will not accept the connection
    (426 would wrongly ask the client to upgrade, which it already did).
    """

    desc = "WSGI apps cannot serve WebSocket"
    status = 403


def refuse_websocket(exchange: Exchange, request: Request) -> None:
    """Answer a WebSocket handshake to a WSGI route with 403, and log why (loop thread)."""
    path = request.raw_path.decode("latin-1")
    log.warning("WebSocket handshake for %s refused: WSGI apps cannot serve WebSocket", path)
    exchange.respond(*WebSocketUnsupportedError().as_response())  # body: "403 WSGI apps..."


def answer_failure(exchange: Exchange) -> None:
    """After an app failure: a 500 if nothing was sent, else abort (loop thread)."""
    if exchange.res_done:
        return
    if exchange.started:
        abort_exchange(exchange)
    else:
        respond_error(exchange, HttpError())  # HttpError's own status: 500


class _WsgiTask:
    """One request: the worker-thread side (run, start_response, write) and the loop side."""

    __slots__ = (
        "_body",
        "_exchange",
        "_gone",
        "_handler",
        "_head",
        "_inflight",
        "_paused",
        "_phase",
        "_start",
        "_sync",
        "environ",
        "spool",
    )

    def __init__(
        self,
        handler: WsgiHandler,
        exchange: Exchange,
        environ: dict[str, Any],
        body: BodyStream | None,
        head: bool,
    ) -> None:
        self._handler = handler
        self._exchange = exchange
        self.environ = environ
        self._body = body
        self._head = head
        # Shared with the loop thread, under _sync.lock.
        self._sync = LazyCondition()
        self._paused = False
        self._gone = False
        self._inflight = 0
        # Worker thread only.
        self._phase = _WAITING
        self._start: Start | None = None
        # A buffered request body: the loop thread's until submitted, then this task's.
        self.spool: SpooledBody | None = None

    # ------------------------------------------------------------- loop thread

    def on_pause(self, paused: bool) -> None:
        with self._sync.lock:
            self._paused = paused
            self._sync.notify()

    def on_error(self, error: BaseException) -> None:
        # The body broke, or the client half-closed after a whole request (the
        # response may still go out then): only 'done'(False) ends the response.
        log.debug("exchange error: %s", error)
        if self._body is not None:
            self._body.fail(error)

    def on_done(self, completed: bool) -> None:
        if not completed:
            with self._sync.lock:
                self._gone = True
                self._sync.notify()

    def _deliver(self, start: Start | None, chunk: bytes) -> None:
        with self._sync.lock:
            self._inflight -= len(chunk)
            self._sync.notify()
            if self._gone:
                return
        try:
            if start is not None:
                self._exchange.response_start(*start)
            if chunk and not self._head:
                self._exchange.response_body(chunk)
        except HttpError:
            self._exchange_refused()

    def _finish(self, start: Start | None, body: bytes) -> None:
        if self._gone:
            return
        exchange = self._exchange
        try:
            if start is not None:
                exchange.respond(*start, b"" if self._head else body)
                return
            if body and not self._head:
                exchange.response_body(body)
            exchange.response_done([])
        except HttpError:
            self._exchange_refused()

    def _exchange_refused(self) -> None:
        # The server's writer rejected what the app produced (e.g. more body than its
        # Content-Length): log, then 500 or abort; the worker stops at its next chunk.
        log.exception("the WSGI app's response was refused by the server")
        with self._sync.lock:
            self._gone = True
            self._sync.notify()
        answer_failure(self._exchange)

    def _fail_on_loop(self) -> None:
        if not self._gone:
            answer_failure(self._exchange)

    # ----------------------------------------------------------- worker thread

    def run(self) -> None:
        result: Iterable[bytes] | None = None
        try:
            try:
                result = self._handler.app(self.environ, self.start_response)
                self._respond(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except _ClientGone:
            log.debug("client gone; stopped the response")
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.environ["wsgi.errors"].flush()
            if self.spool is not None:
                self.spool.close()

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        """PEP 3333 start_response; validates status and headers before anything is sent."""
        if exc_info is not None:
            try:
                if self._phase in (_STARTED, _DONE):
                    # Too late to change the response: re-raise to the app (PEP 3333).
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle
        elif self._phase is not _WAITING:
            raise StartResponseError("start_response() called twice without exc_info")
        try:
            code, phrase = encode_status(status)
            self._start = (code, phrase, encode_headers(headers))
        except AppOutputError:
            self._phase = _INVALID
            raise
        self._phase = _READY
        return self.write

    def write(self, data: bytes) -> None:
        """The PEP 3333 write() callable: send ``data`` now (blocks under backpressure)."""
        if self._phase is _WAITING:
            raise StartResponseError("write() before start_response()")
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        self._send(data)

    def _take_start(self) -> Start | None:
        phase = self._phase
        if phase is _READY:
            self._phase = _STARTED
            return self._start
        if phase is _STARTED:
            return None
        if phase is _WAITING:
            raise StartResponseError("the app produced a body before calling start_response()")
        if phase is _DONE:
            raise StartResponseError("write() after the response ended")
        raise AppOutputError("the app's status or headers were invalid")

    def _send(self, chunk: bytes) -> None:
        if not chunk:
            return
        start = self._take_start()
        with self._sync.lock:
            waited = 0.0
            limit = self._handler.stall_limit
            window = self._handler.window
            while (self._paused or self._inflight > window) and not self._gone:
                if waited >= limit:
                    log.warning("response stalled for %.0f s; giving up", limit)
                    self._gone = True
                    break
                if not self._sync.wait(1.0):
                    waited += 1.0
            if self._gone:
                raise _ClientGone
            self._inflight += len(chunk)
        self._handler.loop.run_in_loop(self._deliver, start, chunk)

    def _respond(self, result: Iterable[bytes]) -> None:
        if type(result) is list or type(result) is tuple:
            for item in result:
                if type(item) is not bytes:
                    raise TypeError(f"the app yielded {type(item).__name__}, not bytes")
            self._complete(b"".join(result), sized=True)
            return
        for chunk in result:
            if type(chunk) is not bytes:
                raise TypeError(f"the app yielded {type(chunk).__name__}, not bytes")
            if chunk:
                self._send(chunk)
            elif self._gone:
                raise _ClientGone
        self._complete(b"", sized=False)

    def _complete(self, body: bytes, sized: bool) -> None:
        start = self._take_start()
        if start is not None and sized:
            code, _phrase, headers = start
            if code not in _NO_LENGTH and not (self._head and not body) and not has_length(headers):
                headers.append((b"Content-Length", str(len(body)).encode("ascii")))
        self._phase = _DONE
        if sized:
            # A list or tuple: no close() follows, so no wake-up here: the pool wakes the
            # loop when this worker runs out of tasks, and its tick delivers it if the next
            # task takes long.
            self._handler.loop.post(self._finish, start, body)
        else:
            # An iterable's close() runs next and may take its time (Django closes its
            # database connections there): the response must not wait for it.
            self._handler.loop.run_in_loop(self._finish, start, body)

    def _fail(self, exc: BaseException) -> None:
        phase = self._phase
        if phase is _DONE:
            log.error("error after the response was complete", exc_info=exc)
            return
        method = self.environ["REQUEST_METHOD"]
        path = self.environ["SCRIPT_NAME"] + self.environ["PATH_INFO"]
        if isinstance(exc, RequestBodyError):
            # The client's fault (it left, stalled or sent too much), seen through a read:
            # one line, no traceback; the server has answered it (400/408/413) already.
            log.info("request body of %s %s incomplete: %s", method, path, exc)
        else:
            log.error("error in WSGI app for %s %s", method, path, exc_info=exc)
        self._phase = _DONE
        self._handler.loop.run_in_loop(self._fail_on_loop)
