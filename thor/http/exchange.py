"""The exchange contract: what a server hands an application for one request.

An HTTP/1.1 exchange (:class:`thor.http.server.HttpServerExchange`) implements it, and so
does an HTTP/2 stream (:class:`thor.http2.exchange.H2Exchange`), so that native handlers,
the gateway's WSGI and ASGI adapters, the proxy and aggregation serve every protocol without
knowing which one carries the request.  Code outside the library types its handlers
against :class:`Exchange`, never against a connection class: the connection is the
protocol's business.

Events, in order (a grammar, as asyncio's ``protocols.py`` writes them)::

    request_start(method, uri, headers)  request_body(chunk)*  request_done(trailers)
    pause(paused)* and error(err)? anywhere;  done(completed) once, last

Calls: ``response_nonfinal``? ``response_start`` ``response_body``* ``response_done``, or
``respond`` for the three at once; ``abort()`` ends the exchange without completing its
response (HTTP/1.1 closes the connection; HTTP/2 resets the stream).

Only the loop thread may touch an exchange; other threads post to ``exchange.loop``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from thor.loop import Loop

__all__ = ["Exchange", "TlsInfo"]

RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What the TLS layer negotiated for the connection an exchange arrived on."""

    version: str | None  # "TLSv1.3"
    cipher: str | None
    alpn_protocol: str | None  # "http/1.1", "h2", or None when none was agreed
    peer_certificate: bytes | None  # DER, when the client presented one


class Exchange(Protocol):
    """One request and its response, whatever the protocol (see the module docstring)."""

    # The request, as the head said it (bytes, as Thor 0.17 gave them).
    method: bytes
    uri: bytes
    req_hdrs: RawHeaders
    req_version: bytes  # b"1.1", b"1.0"; b"2" for HTTP/2
    scheme: str  # "http" or "https": the transport the request came over
    expect_continue: bool
    start_time: float  # loop time when the request head was complete

    # Progress, for adapters and access logs.
    req_complete: bool
    req_body_bytes: int
    started: bool
    res_done: bool
    res_status: int
    res_bytes: int

    @property
    def loop(self) -> Loop:
        """The loop the exchange lives on."""
        ...

    @property
    def client_address(self) -> Any:
        """The peer's address: (host, port, ...) or a UNIX socket's name."""
        ...

    @property
    def server_address(self) -> Any:
        """The address of the listener that accepted the connection."""
        ...

    @property
    def tls(self) -> TlsInfo | None:
        """What TLS negotiated, or None over cleartext."""
        ...

    def on(self, event: str, listener: Callable[..., Any]) -> Any: ...
    def once(self, event: str, listener: Callable[..., Any]) -> Any: ...
    def emit(self, event: str, *args: Any) -> None: ...
    def remove_listener(self, event: str, listener: Callable[..., Any]) -> None: ...

    def response_nonfinal(
        self, status: int | bytes, phrase: str | bytes, headers: Any = ...
    ) -> None: ...
    def response_start(
        self, status: int | bytes | str, phrase: str | bytes, headers: Any
    ) -> None: ...
    def response_body(self, chunk: bytes) -> None: ...
    def response_done(self, trailers: Any = ..., close: bool = ...) -> None: ...
    def respond(
        self, status: int | bytes | str, phrase: str | bytes, headers: Any, body: bytes = ...
    ) -> None: ...
    def pause_request_body(self, paused: bool) -> None: ...
    def set_write_buffer_limit(self, high: int) -> None:
        """Bound the response bytes held for the client before ``pause(True)``, for the rest
        of this exchange (a relay's per-response buffer).  HTTP/1.1 sets the connection's
        write high-water mark until ``done``; HTTP/2 keeps what the peer's stream window
        does not take, which already bounds it."""
        ...

    def abort(self) -> None:
        """End the exchange now, its response incomplete: what was already produced is sent,
        then the transport says the response is cut (a closed connection, a reset stream)."""
        ...
