"""One proxied request: a server exchange relayed to a client exchange and back.

Theory of operation.  A :class:`ProxiedExchange` joins the gateway's server exchange (the
client's request) to an :class:`~thor.http.client.HttpClientExchange` (the upstream's
response) and moves events across, both ways, in bounded memory:

    client --request_body--> server ex --> client ex --> upstream
       ^                                                    |
       +---- server ex <--response_body-- client ex <-------+

Flow control is the four signals of Thor's API, wired end to end: the upstream connection
stops taking the body -> client ex ``pause`` -> ``exchange.pause_request_body``; the client
stops reading -> server ex ``pause`` -> ``res_body_pause``.  Nothing is buffered here but
the start of a request body (``request_buffer_size``, held before the upstream is asked, so
that a slow upload holds no upstream connection), so memory stays at the sockets' water
marks whatever the size of the bodies.

States (:class:`Phase`)::

    WAITING --response_start--> RELAYING --response_done--> DONE
       |  \\--error, retryable--> WAITING (on another upstream)
       +--error--> DONE (a 502/503/504 answer)      RELAYING --error--> DONE (abort)
                                                    RELAYING --switched--> DONE (a tunnel)

Before the response head is relayed an upstream failure becomes an error response (or a
retry on another member: idempotent method, no request body, budget permitting); after it,
the only honest signal left is to abort the client's connection, so that a truncated body
is never mistaken for a complete one (RFC 9112 §6.3, §8).  A client that leaves cancels the
upstream exchange.

A cache's fetch (``ProxyHandler.cache_fetch``) is relayed the same way with a *sink* in
place of the server exchange: the response's calls go to the sink (the cache's Fetch, which
passes them on to the client and keeps a copy; the field list it gets is its own, to keep or
change), the request is a complete GET, and nothing
listens to the client's exchange: the cache passes on its pauses (``client_paused``) and
``cancel``s the relay when nobody wants the response.

A request that asks to switch protocols (RFC 9110 §7.8: WebSocket's handshake) is offered
upstream with its ``Upgrade`` protocols (the client exchange's ``upgrade=``), when the
client's exchange can be taken over (HTTP/1.1).  Any answer but 101 is relayed as usual; a
101 is relayed with its Upgrade, then ``switched`` hands both connections to a
:class:`~thor_gateway.proxy.tunnel.Tunnel`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from thor.http.error import (
    ConnectError,
    DnsError,
    HttpError,
    OutputStateError,
    ReadTimeoutError,
    ServiceUnavailableError,
    UpstreamError,
)
from thor.http.headers import strip_hop_by_hop
from thor.http.protocol.abnf import QUESTION_MARK
from thor_gateway.aggregation.transform import ResponseTransformer
from thor_gateway.proxy import forwarding
from thor_gateway.proxy.balancer import choose
from thor_gateway.proxy.health_checks import Ejection
from thor_gateway.proxy.tunnel import Tunnel
from thor_gateway.routing.request import address_of

if TYPE_CHECKING:
    from thor.http.exchange import Exchange
    from thor_gateway.proxy.handler import ProxyHandler
    from thor_gateway.proxy.upstreams import Upstream
    from thor_gateway.routing.request import Request

__all__ = ["BadGatewayError", "GatewayTimeoutError", "Phase", "ProxiedExchange", "error_for"]

log = logging.getLogger("thor_gateway.proxy")

Headers = list[tuple[bytes, bytes]]
# What a response head's fields go through on their way to the client: (status, fields)
# -> the fields to send (a cache's, ProxyHandler.cache_pass).
HeadHook = Callable[[int, Headers], Headers]
_GET = b"GET"
_NO_FIELDS: Headers = []
# Request bodies up to this size are kept until the response starts, for a retry.
REPLAY_LIMIT = 64 * 1024


class Phase(enum.Enum):
    WAITING = "waiting"  # the request is on its way; no response head relayed yet
    RELAYING = "relaying"  # the response head went to the client; the body follows
    DONE = "done"


# Module-level aliases for the hot paths: an enum member lookup (Phase.DONE) costs several
# times a global's in CPython 3.11.
_WAITING, _RELAYING, _DONE = Phase.WAITING, Phase.RELAYING, Phase.DONE


class BadGatewayError(HttpError):
    """The upstream could not be reached or answered badly (RFC 9110 §15.6.3)."""

    desc = "Bad Gateway"
    status = 502


class GatewayTimeoutError(HttpError):
    """The upstream did not answer in time (RFC 9110 §15.6.5)."""

    desc = "Gateway Timeout"
    status = 504


def error_for(err: HttpError) -> HttpError:
    """What a gateway answers for an upstream failure (RFC 9110 §15.6.3, §15.6.5).

    502 when the upstream could not be reached or answered badly, 504 when it did not
    answer in time (silence after connecting, or a connect that timed out).
    """
    if isinstance(err, ReadTimeoutError):
        return GatewayTimeoutError()
    if isinstance(err, ConnectError) and "timed out" in str(err).lower():
        return GatewayTimeoutError()
    return BadGatewayError()


class ProxiedExchange:
    """Relays one request; created by :meth:`ProxyHandler.handle`."""

    __slots__ = (
        "attempts",
        "cx",
        "exchange",
        "failed",
        "headers",
        "held",
        "held_size",
        "key",
        "method",
        "phase",
        "proxy",
        "relayed",
        "replay",
        "replay_size",
        "req_done",
        "req_trailers",
        "target",
        "transformer",
        "tried",
        "upgrade",
        "upstream",
    )

    def __init__(
        self,
        proxy: ProxyHandler,
        exchange: Exchange,
        request: Request,
        sink: Any = None,
        headers: Headers | None = None,
        extra: Headers = _NO_FIELDS,
    ) -> None:
        self.proxy = proxy
        self.exchange: Exchange = exchange if sink is None else sink
        self.method = request.method if sink is None else _GET
        # The member it goes to: the route's pick, or its balancer (by a hash key for the
        # consistent policies), counted by the retry budget.
        members = proxy.upstreams.members
        now = proxy.loop.time()
        if proxy.pick is not None:
            upstream = proxy.pick(request, members)
            key = None
        else:
            key = proxy.key(request.headers, request.client) if proxy.key is not None else None
            upstream = choose(proxy.balancer, members, now, key)
        proxy.retry_budget.request(now)
        self.key = key
        self.phase = _WAITING
        self.upstream = upstream
        self.tried: list[Upstream] = []
        self.attempts = 0
        self.cx: Any = None
        self.req_done = False
        self.req_trailers: Headers = []
        # The request body so far, kept (up to REPLAY_LIMIT) until the response starts, so
        # that a failed attempt can be replayed on another member; None once too large.
        self.replay: list[bytes] | None = []
        self.replay_size = 0
        # The body received before an upstream connection is asked for (request buffering,
        # see start); None once it went upstream, or when it is not held at all.
        self.held: list[bytes] | None = None
        self.held_size = 0
        self.failed = False
        self.transformer: ResponseTransformer | None = None
        # What the response head's fields go through on their way to the client (an
        # upstream's, or the proxy's own error answer): a cache's (ProxyHandler.cache_pass
        # adds its Cache-Status so), None for none.
        self.relayed: HeadHook | None = None
        settings = proxy.settings
        target = request.target
        if request.script_name or target[:1] != b"/":
            target = forwarding.upstream_target(
                request.raw_path,
                request.query,
                request.script_name,
                b"",  # each member's base path is added when it is picked
                strip_prefix=settings.strip_prefix,
                has_query=QUESTION_MARK in target,
            )
        self.target = target
        upgrades: list[bytes] = []
        self.headers = forwarding.request_headers(
            request.headers if headers is None else headers,
            method=self.method,
            version=request.http_version,
            # This hop: the peer that connected to us and our listener's scheme (RFC 7239
            # §5.2), not the client a trusted front proxy named -- that one is already in
            # the Forwarded / X-Forwarded-For it sent, which are passed on.
            client=address_of(getattr(exchange, "client_address", None)),
            scheme=getattr(exchange, "scheme", request.scheme),
            upstream_host=b"",  # set per member in _send
            preserve_host=True,  # the real decision is made in _send
            pseudonym=settings.via,
            forwarded=settings.forwarded,
            x_forwarded=settings.x_forwarded,
            upgrades=upgrades,
        )
        if proxy.speaks_h2 and forwarding.asks_for_trailers(request.headers):
            self.headers.append((b"TE", b"trailers"))
        # The protocols to offer upstream (RFC 9110 §7.8), if the client asked to switch and
        # its connection can be handed over after a 101 (an HTTP/2 stream cannot).
        self.upgrade: bytes | None = None
        if upgrades and sink is None and hasattr(exchange, "take_over"):
            self.upgrade = b", ".join(upgrades)
        if proxy.transforms:
            self.transformer = ResponseTransformer(proxy.transforms, self.method, request.headers)
        if extra:
            self.headers += extra  # a cache's own fields, added as they are
        if sink is not None:
            # A fetch: a complete GET; the caller says when the client pauses or leaves.
            self.req_done = True
            return
        exchange.on("request_body", self._on_request_body)
        exchange.on("request_done", self._on_request_done)
        exchange.on("pause", self.client_paused)
        # 'done'(False) follows every way an exchange can fail (a broken request body, a
        # client that left), so it is the one place to cancel the upstream request.
        exchange.on("done", self._on_client_done)

    # --- sending upstream ---------------------------------------------------------------

    def start(self) -> None:
        upstream = self.upstream
        if upstream is None:
            self._answer(
                ServiceUnavailableError(), [(b"Retry-After", b"1")], b"no upstream available\n"
            )
            return
        if (
            not self.req_done
            and not self.exchange.req_complete
            and self.upgrade is None
            and self.proxy.settings.request_buffer_size
        ):
            # Request buffering (HAProxy's http-buffer-request): a body comes whole, or
            # request_buffer_size of it, before the request takes an upstream connection.
            # Streamed at once, each slow upload held a pooled connection while it trickled:
            # some 500 of them took all the member's connections, and every other request
            # queued behind them until they were cut (issue 16). A client that trickles is
            # cut here by the server's minimum body rate, having cost only its bytes.
            self.held = []
            return
        self._send(upstream)

    def _send(self, upstream: Upstream) -> None:
        proxy = self.proxy
        self.upstream = upstream
        self.tried.append(upstream)
        self.attempts += 1
        upstream.active += 1
        upstream.requests += 1
        headers = self.headers
        if not proxy.settings.preserve_host or headers[0][1] == b"":
            headers = [(b"Host", upstream.authority), *headers[1:]]
        base = upstream.target.base_path
        target = base.rstrip(b"/") + self.target if base else self.target
        cx = proxy.client.exchange()
        self.cx = cx
        # The client exchange is ours alone: its events go to the methods named after them
        # (response_start, ..., error, pause), one call instead of six listeners.
        cx.sink(self)
        url = upstream.origin_bytes + target
        if self.upgrade is None:
            cx.request_start(self.method, url, headers, preserve_host=True)
        else:
            cx.on("switched", self.switched)  # the client closes a switch nobody listens to
            cx.request_start(self.method, url, headers, preserve_host=True, upgrade=self.upgrade)
        if self.attempts > 1 and self.replay:
            for chunk in self.replay:
                cx.request_body(chunk)
        elif self.held is not None:  # the body held until now (start)
            for chunk in self.held:
                cx.request_body(chunk)
            self.held = None
        if self.req_done:
            cx.request_done(self.req_trailers)

    def _on_request_body(self, chunk: bytes) -> None:
        replay = self.replay
        if replay is not None:
            self.replay_size += len(chunk)
            if self.replay_size <= REPLAY_LIMIT and self.phase is _WAITING:
                replay.append(chunk)
            else:
                self.replay = None
        if self.cx is not None and self.phase is not _DONE:
            self.cx.request_body(chunk)
        elif self.held is not None and self.phase is _WAITING:
            self.held.append(chunk)
            self.held_size += len(chunk)
            if (
                self.held_size >= self.proxy.settings.request_buffer_size
                and self.upstream is not None
            ):
                self._send(self.upstream)  # a large body: the rest streams

    def _on_request_done(self, trailers: Headers) -> None:
        self.req_done = True
        self.req_trailers = trailers
        if self.cx is not None and self.phase is not _DONE:
            self.cx.request_done(trailers)
        elif self.held is not None and self.phase is _WAITING and self.upstream is not None:
            self._send(self.upstream)  # the whole body is here

    def pause(self, paused: bool) -> None:
        # The upstream is not taking the body as fast as the client sends it.
        if self.phase is not _DONE:
            self.exchange.pause_request_body(paused)

    # --- relaying back ------------------------------------------------------------------

    def response_nonfinal(self, status: bytes, phrase: bytes, headers: Headers) -> None:
        # The server sends its own 100 Continue when it reads the body (RFC 9110 §15.2.1
        # lets a proxy drop a 100 it did not ask for); 102/103 go on to the client.
        if status != b"100" and self.phase is _WAITING:
            relayed = strip_hop_by_hop(headers)
            self.exchange.response_nonfinal(int(status), phrase, relayed)

    def response_start(self, status: bytes, phrase: bytes, headers: Headers) -> None:
        if self.phase is not _WAITING:
            return
        code = int(status)
        if code == 101:
            self._relay_switch(phrase, headers)
            return
        out, foreign = forwarding.relay_response_headers(
            headers, self.cx.res_version or b"1.1", self.proxy.settings.via
        )
        if foreign:
            # RFC 9112 §6.1: only chunked can be undone here; relaying the bytes under
            # another framing would hand the client a body it cannot decode.
            self.cx.cancel()
            self.error(UpstreamError("unknown transfer coding"))
            return
        upstream = self.upstream
        if upstream is not None and code in self.proxy.settings.fail_statuses:
            upstream.failures += 1
            upstream.ejection.failure(self.proxy.loop.time())
            self.failed = True  # relayed as it is, but not a success on response_done
        self.phase = _RELAYING
        self.replay = None  # no retry from here on
        if self.transformer is not None:
            # (Copied: what a transform returns may be its own list, and the sink may keep or
            # change the list it gets: an HTTP cache's Fetch does.)
            out = list(self.transformer.start(code, out))
        if self.relayed is not None:
            out = self.relayed(code, out)
        exchange = self.exchange
        # A bound per response (nginx's proxy_buffers): a client that stops reading holds
        # at most this mark plus one upstream read (the client's read_size); the rest waits
        # in the upstream socket.  Without it the connection's 256 KiB mark applies.
        exchange.set_write_buffer_limit(self.proxy.write_limit)
        exchange.response_start(code, phrase, out)

    def response_body(self, chunk: bytes) -> None:
        transformer = self.transformer
        if transformer is not None:
            chunk = transformer.body(chunk)
            if not chunk:
                return
        self.exchange.response_body(chunk)

    def response_done(self, trailers: Headers) -> None:
        if self.phase is not _RELAYING:
            return
        transformer = self.transformer
        if transformer is not None:
            tail = transformer.end()
            if tail:
                self.exchange.response_body(tail)
        upstream = self.upstream
        if upstream is not None and not self.failed:
            ejection = upstream.ejection
            if ejection.fails or ejection.state is not Ejection.IN_SERVICE:
                ejection.success()
        self._end()
        self.exchange.response_done(trailers)

    # --- switching protocols ------------------------------------------------------------

    def _relay_switch(self, phrase: bytes, headers: Headers) -> None:
        """The upstream agreed to switch (RFC 9110 §15.2.2): relay its 101 head now; its
        connection follows in ``switched``, in the same call of the client exchange."""
        self.phase = _RELAYING
        self.replay = None
        out = forwarding.switch_response_headers(
            headers, self.cx.res_version or b"1.1", self.proxy.settings.via
        )
        self.exchange.response_start(101, phrase, out)

    def switched(self, tcp: Any, leftover: bytes) -> None:
        """Both sides leave HTTP: the client's connection is taken over, and a tunnel joins
        it to the upstream's.  The member's ``active`` count goes to the tunnel."""
        upstream = self.upstream
        cx = self.cx
        self.phase = _DONE
        self.cx = None
        if upstream is not None and cx is not None:
            upstream.requests += cx.resent
        try:
            handed = self.exchange.take_over()  # type: ignore[attr-defined]
        except OutputStateError as err:  # the client left, or never asked (a bug upstream)
            log.info("cannot switch to the upstream's protocol: %s", err)
            tcp.abort()
            if upstream is not None:
                upstream.active -= 1
            self.exchange.abort()
            return
        proxy = self.proxy
        tunnel = Tunnel(
            handed.tcp_conn,
            tcp,
            loop=handed.loop,
            idle_timeout=proxy.settings.tunnel_idle_timeout,
            member=upstream,
            on_close=proxy.tunnels.discard,
        )
        proxy.tunnels.add(tunnel)
        tunnel.start(handed.leftover, leftover)

    def client_paused(self, paused: bool) -> None:
        """The client is not reading the response: stop reading it from the upstream."""
        cx = self.cx
        if cx is not None and self.phase is _RELAYING:
            cx.res_body_pause(paused)

    # --- failures ---------------------------------------------------------------------

    def error(self, err: HttpError) -> None:
        if self.phase is _DONE:
            return
        upstream = self.upstream
        proxy = self.proxy
        now = proxy.loop.time()
        if upstream is not None:
            upstream.failures += 1
            upstream.ejection.failure(now)
        if self.phase is _RELAYING:
            log.warning("upstream %s failed mid-response: %s; aborting", self._name(), err)
            self._end()
            self.exchange.abort()
            return
        log.info("upstream %s failed: %s", self._name(), err)
        if self._retryable(err):
            self._release()
            nxt = choose(proxy.balancer, proxy.upstreams.members, now, self.key, self.tried)
            if nxt is not None:
                self.exchange.pause_request_body(False)  # the failed attempt may have paused it
                self._send(nxt)
                return
        self._answer(error_for(err))

    def _retryable(self, err: HttpError) -> bool:
        """May this request go to another member? (RFC 9110 §9.2.2, RFC 9112 §9.3.1)

        When the upstream never got the request (no connection, or a name that did not
        resolve) any request may go elsewhere; when it may have got it, only an idempotent
        one.  Either way the body received so far must all be in the replay buffer (the
        rest, if any, follows to the new attempt as it arrives).
        """
        proxy = self.proxy
        if self.attempts > proxy.settings.retries or self.replay is None:
            return False
        if not (_never_sent(err) or self.method in proxy.retry_methods):
            return False
        return proxy.retry_budget.allow(proxy.loop.time())

    def _on_client_done(self, completed: bool) -> None:
        if not completed:
            self.cancel()

    def cancel(self) -> None:
        """Nobody wants the response any more: the upstream request is cancelled."""
        if self.phase is _DONE:
            return
        cx = self.cx
        self._end()
        if cx is not None:
            cx.cancel()

    # --- ending -----------------------------------------------------------------------

    def _answer(
        self, error: HttpError, extra: Sequence[tuple[bytes, bytes]] = (), body: bytes | None = None
    ) -> None:
        self._end()
        exchange = self.exchange
        if exchange.started:
            return
        answer = error.as_response(extra, body)
        fields = answer.headers
        if self.relayed is not None:  # (the proxy's own answer is relayed as an upstream's)
            fields = self.relayed(answer.status, fields)
        exchange.response_start(answer.status, answer.phrase, fields)
        if self.method != b"HEAD":
            exchange.response_body(answer.body)
        exchange.response_done([])

    def _release(self) -> None:
        upstream = self.upstream
        cx = self.cx
        if upstream is not None and cx is not None:
            upstream.active -= 1
            # Attempts the client made again by itself on a fresh connection (a stale pooled
            # one died under the request): each reached, or may have reached, the member.
            upstream.requests += cx.resent
        self.cx = None

    def _end(self) -> None:
        if self.phase is _DONE:
            return
        self._release()
        self.phase = _DONE

    def _name(self) -> str:
        return self.upstream.origin if self.upstream is not None else "?"


def _never_sent(err: HttpError) -> bool:
    """True when the error shows the request never reached the upstream."""
    if isinstance(err, DnsError):
        return True
    # The client's ConnectError is also used for a connection lost before the response,
    # when the request may have been written; only a failure to connect is safe.
    return isinstance(err, ConnectError) and "before the response" not in str(err)
