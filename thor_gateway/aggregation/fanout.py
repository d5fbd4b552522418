"""Service aggregation: fan out several requests at once and combine the answers.

Usage, in a native handler (on the loop thread)::

    from thor_gateway.aggregation import Call, fan_out, merge_json, respond_json

    def done(results):
        respond_json(exchange, merge_json(results.values()))

    fan_out({"user": Call(f"{USERS}/u/7"), "orders": Call(f"{ORDERS}/o?u=7", timeout=0.5)},
            done, deadline=1.0)

or mount an :class:`Aggregator` (a Handler) that does the plumbing.  From a WSGI thread
use :mod:`thor_gateway.aggregation.blocking`, which runs the same code on the loop.

Theory of operation: every call is one exchange on a shared evented client (pooled,
kept-alive connections), started at once, so a fan-out costs the slowest call, not the sum.
Each call ends in exactly one :class:`Result`: a response (any status), or an error (the
client's ``HttpError``, or :class:`DeadlineError` when its own ``timeout`` or the overall
``deadline`` passed first: then its exchange is cancelled).  ``on_result`` sees each result
as it arrives (for streamed answers); ``on_done`` gets them all, failed ones included, once
every call has ended or the deadline passed: partial results are the caller's to judge.
Bodies are collected up to ``max_body`` bytes; a larger one is an error, not a truncation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import thor.loop
from thor.http import error

__all__ = [
    "Aggregator",
    "Call",
    "DeadlineError",
    "FanOut",
    "Result",
    "client_for",
    "fan_out",
    "merge_json",
    "respond_json",
]

Headers = list[tuple[bytes, bytes]]


class DeadlineError(error.HttpError):
    desc = "Deadline exceeded"
    status = 504


class BodyTooLargeError(error.HttpError):
    desc = "Response body larger than the call allows"
    status = 502


@dataclass(slots=True)
class Call:
    """One request of a fan-out."""

    url: str | bytes
    method: bytes = b"GET"
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    timeout: float | None = None  # seconds for this call alone
    max_body: int = 8 << 20

    def __post_init__(self) -> None:
        # Bytes once, here, rather than at every request_start of a reused Call.
        if isinstance(self.url, str):
            self.url = self.url.encode("ascii")


@dataclass(slots=True)
class Result:
    """How one call ended: ``status`` 0 and ``error`` set when it failed."""

    name: str
    status: int = 0
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    error: Exception | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (RFC 8259 §8.1: UTF-8; a BOM is tolerated)."""
        text = self.body.decode()
        return _decode(text[1:] if text[:1] == "\ufeff" else text)

    def header(self, name: bytes) -> bytes | None:
        lname = name.lower()
        for field_name, value in self.headers:
            if field_name.lower() == lname:
                return value
        return None


_clients: dict[int, Any] = {}
# json.dumps with separators builds an encoder per call; one is enough (it keeps no state).
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_decode = json.JSONDecoder().decode  # json.loads(str) without its checks of the argument


def client_for(loop: thor.loop.Loop | None = None) -> Any:
    """The shared aggregation client of ``loop`` (the default loop at call time)."""
    the_loop = loop or thor.loop.default()
    client = _clients.get(id(the_loop))
    if client is None or client.loop is not the_loop:
        from thor.http.client import HttpClient

        # Fan-outs put many calls in flight to few backends: a deep pool per origin.
        # retry_limit 0: a refused backend fails at once (a retry 0.5 s later would outlive
        # most fan-out deadlines); a stale pooled connection is still retried, for free.
        client = HttpClient(loop=the_loop, max_server_conn=512, connect_timeout=3.0, retry_limit=0)
        _clients[id(the_loop)] = client
    return client


class _Pending:
    """One call in flight."""

    __slots__ = ("call", "chunks", "exchange", "fan", "result", "size", "started", "timer")

    def __init__(self, fan: FanOut, name: str, call: Call) -> None:
        self.fan: FanOut | None = fan  # None once ended (no cycle left for the GC to find)
        self.call = call
        self.result = Result(name)
        self.chunks: list[bytes] = []
        self.size = 0
        self.timer: thor.loop.ScheduledEvent | None = None
        self.started = fan.loop.time()
        ex = fan.client.exchange()
        self.exchange = ex
        ex.sink(self)  # its events call the methods named after them: one call, not four

    def send(self, loop: thor.loop.Loop) -> None:
        call = self.call
        if call.timeout is not None:
            self.timer = loop.schedule(call.timeout, self._timeout)
        ex = self.exchange
        ex.request_start(call.method, call.url, call.headers)
        if call.body:
            ex.request_body(call.body)
        ex.request_done([])

    def response_start(self, status: bytes, phrase: bytes, headers: Headers) -> None:
        self.result.status = int(status)
        self.result.headers = headers

    def response_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.call.max_body:
            self.exchange.cancel()
            self.error(BodyTooLargeError(f"more than {self.call.max_body} bytes"))
            return
        self.chunks.append(chunk)

    def response_done(self, trailers: Headers) -> None:
        chunks = self.chunks
        self.result.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._end()

    def error(self, err: Exception) -> None:
        self.result.status = 0
        self.result.error = err
        self._end()

    def _timeout(self) -> None:
        self.timer = None
        self.exchange.cancel()
        self.error(DeadlineError(f"no complete answer within {self.call.timeout}s"))

    def cancel(self, err: Exception) -> None:
        self.exchange.cancel()
        self.error(err)

    def _end(self) -> None:
        fan = self.fan
        if fan is None:
            return
        self.fan = None
        if self.timer is not None:
            self.timer.delete()
            self.timer = None
        self.result.elapsed = fan.loop.time() - self.started
        self.chunks = []
        fan._ended(self)


class FanOut:
    """A set of calls in flight; see :func:`fan_out`."""

    def __init__(
        self,
        calls: Mapping[str, Call | str],
        on_done: Callable[[dict[str, Result]], Any],
        *,
        deadline: float | None = None,
        on_result: Callable[[Result], Any] | None = None,
        client: Any = None,
        loop: thor.loop.Loop | None = None,
    ) -> None:
        self.loop = loop or (client.loop if client is not None else thor.loop.default())
        self.client = client if client is not None else client_for(self.loop)
        # Both are dropped once finished: they are often closures that refer to the fan-out.
        self.on_done: Callable[[dict[str, Result]], Any] | None = on_done
        self.on_result = on_result
        self.deadline = deadline
        self.results: dict[str, Result] = {}
        self._pending: dict[str, _Pending] = {
            name: _Pending(self, name, call if isinstance(call, Call) else Call(call))
            for name, call in calls.items()
        }
        self._left = len(self._pending)
        self._timer: thor.loop.ScheduledEvent | None = None
        self.finished = False

    def start(self) -> FanOut:
        if self.deadline is not None:
            self._timer = self.loop.schedule(self.deadline, self._expired)
        if not self._pending:
            self.loop.call_soon(self._finish)
        loop = self.loop
        for pending in list(self._pending.values()):
            pending.send(loop)
        return self

    def cancel(self) -> None:
        """Cancel the calls still in flight; ``on_done`` is not called."""
        self.finished = True
        self.on_done = self.on_result = None
        self._stop_timer()
        for pending in list(self._pending.values()):
            if pending.result.name not in self.results:
                pending.fan = None
                pending.exchange.cancel()

    def _ended(self, pending: _Pending) -> None:
        result = pending.result
        if self.finished or result.name in self.results:
            return
        self.results[result.name] = result
        self._left -= 1
        if self.on_result is not None:
            self.on_result(result)
        if self._left == 0:
            self._finish()

    def _expired(self) -> None:
        self._timer = None
        for name, pending in list(self._pending.items()):
            if name not in self.results:
                pending.cancel(DeadlineError(f"the fan-out deadline ({self.deadline}s) passed"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._stop_timer()
        on_done = self.on_done
        self.on_done = self.on_result = None
        # In the order the calls were given, whatever order they ended in.
        if on_done is not None:
            on_done({name: self.results[name] for name in self._pending})


def fan_out(
    calls: Mapping[str, Call | str],
    on_done: Callable[[dict[str, Result]], Any],
    *,
    deadline: float | None = None,
    on_result: Callable[[Result], Any] | None = None,
    client: Any = None,
    loop: thor.loop.Loop | None = None,
) -> FanOut:
    """Start every call now; ``on_done(results)`` once all ended or ``deadline`` passed.

    Runs on the loop thread.  ``calls`` maps a name to a :class:`Call` (or a URL).
    """
    return FanOut(
        calls, on_done, deadline=deadline, on_result=on_result, client=client, loop=loop
    ).start()


def merge_json(results: Iterable[Result]) -> dict[str, Any]:
    """The JSON objects of the successful results merged, first to last (later keys win)."""
    merged: dict[str, Any] = {}
    for result in results:
        if result.ok:
            doc = result.json()
            if isinstance(doc, dict):
                merged.update(doc)
    return merged


def respond_json(exchange: Any, doc: Any, status: int = 200, phrase: bytes = b"OK") -> None:
    """Answer ``exchange`` with ``doc`` as JSON, in one piece."""
    body = _COMPACT.encode(doc).encode()
    exchange.response_start(
        status,
        phrase,
        [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(body))],
    )
    exchange.response_body(body)
    exchange.response_done([])


CallsFor = Callable[[Any], Mapping[str, Call | str]]
Combine = Callable[[dict[str, Result]], Any]


class Aggregator:
    """A mountable handler that fans out for each request and answers the combination.

    ``calls(request)`` names the calls; ``combine(results)`` returns the JSON document to
    answer (default: :func:`merge_json`), or raise :class:`error.HttpError` to answer its
    status.  With ``require_all`` a failed call makes the answer a 502 (504 for a deadline).
    With ``stream`` the answer is NDJSON, one line per call as it completes:
    ``{"name": ..., "status": ..., "body": <its JSON or null>, "error": null | "..."}``.
    """

    def __init__(
        self,
        calls: CallsFor,
        combine: Combine | None = None,
        *,
        deadline: float | None = 5.0,
        require_all: bool = False,
        stream: bool = False,
        client: Any = None,
    ) -> None:
        self.calls = calls
        self.combine = combine or (lambda results: merge_json(results.values()))
        self.deadline = deadline
        self.require_all = require_all
        self.stream = stream
        self.client = client

    def handle(self, exchange: Any, request: Any) -> None:
        loop = exchange.loop
        client = self.client or client_for(loop)
        calls = self.calls(request)
        gone: list[bool] = []
        if self.stream:
            exchange.response_start(200, b"OK", [(b"Content-Type", b"application/x-ndjson")])
            fan = FanOut(
                calls,
                lambda results: None if gone else exchange.response_done([]),
                deadline=self.deadline,
                on_result=lambda result: None if gone else exchange.response_body(_line(result)),
                client=client,
            )
        else:
            fan = FanOut(
                calls,
                lambda results: None if gone else self._answer(exchange, results),
                deadline=self.deadline,
                client=client,
            )

        def on_done(completed: bool) -> None:
            if not completed:  # the client left: the calls have no one to answer
                gone.append(True)
                fan.cancel()

        exchange.on("done", on_done)
        fan.start()

    def _answer(self, exchange: Any, results: dict[str, Result]) -> None:
        if self.require_all:
            failed = [r for r in results.values() if not r.ok]
            if failed:
                timeout = any(isinstance(r.error, DeadlineError) for r in failed)
                status = 504 if timeout else 502
                respond_json(
                    exchange,
                    {"error": "upstream calls failed", "failed": [r.name for r in failed]},
                    status,
                    b"Gateway Timeout" if timeout else b"Bad Gateway",
                )
                return
        try:
            doc = self.combine(results)
        except error.HttpError as err:
            respond_json(exchange, {"error": str(err)}, err.status, err.server_status[1])
            return
        respond_json(exchange, doc)

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        if self.client is not None:
            self.client.close()
        done(None)


def _line(result: Result) -> bytes:
    body: Any = None
    if result.ok:
        try:
            body = result.json()
        except ValueError:
            body = result.body.decode("utf-8", "replace")
    doc = {
        "name": result.name,
        "status": result.status,
        "body": body,
        "error": None if result.error is None else str(result.error),
    }
    return _COMPACT.encode(doc).encode() + b"\n"
