"""``thor.WebSocketClient``: opening WebSockets to ``ws://`` and ``wss://`` URLs (RFC 6455 §4.1).

The opening handshake is an ordinary request made by the library's ``HttpClient`` with
``upgrade="websocket"`` (docs/http-client.md, "Switching protocols"): DNS, connect and TLS
(verified by default), timeouts and ``check_ip`` are the HTTP client's. On the ``switched``
event the answer is checked by the sans-IO core (``ClientRequest.check``) and the raw
connection becomes a :class:`~thor.websocket.websocket.WebSocket`. Events of the client::

    open(websocket)   one per connect() that succeeded
    error(err)        one per connect() that failed: an HttpError (UrlError, ConnectError,
                      DnsError, ReadTimeoutError, HandshakeResponseError for a refusal...)
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import thor.loop
from thor.events import EventEmitter
from thor.http.client import HttpClient
from thor.http.error import HttpError, UrlError
from thor.tcp import TcpConnection
from thor.websocket.protocol import (
    Connection,
    DeflateConfig,
    HandshakeResponseError,
    client_request,
)
from thor.websocket.websocket import WebSocket, options_of

__all__ = ["WebSocketClient"]

log = logging.getLogger("thor.websocket")

_SCHEMES = {"ws": "http", "wss": "https"}


class WebSocketClient(EventEmitter):
    """Opens WebSockets; ``open(websocket)`` or ``error(err)`` for each ``connect``."""

    connect_timeout: float = 10.0  # seconds for DNS, TCP and TLS
    open_timeout: float = 10.0  # seconds for the server's answer to the handshake

    def __init__(
        self,
        loop: thor.loop.Loop | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout: float | None = None,
        open_timeout: float | None = None,
        http_client: HttpClient | None = None,
    ) -> None:
        super().__init__()
        self.loop = loop or thor.loop.default()
        if connect_timeout is not None:
            self.connect_timeout = connect_timeout
        if open_timeout is not None:
            self.open_timeout = open_timeout
        self.http_client = http_client or HttpClient(
            self.loop,
            connect_timeout=self.connect_timeout,
            read_timeout=self.open_timeout,
            tls_context=tls_context,
            retry_limit=0,
        )

    def connect(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        headers: Iterable[tuple[bytes | str, bytes | str]] = (),
        deflate: DeflateConfig | bool = True,
        **options: Any,
    ) -> None:
        """Open a WebSocket to ``url``; ``open`` or ``error`` follows.

        ``subprotocols`` are offered in order (the chosen one is ``websocket.subprotocol``);
        ``headers`` go with the handshake (``Origin``, ``Authorization``...); ``deflate``
        offers permessage-deflate. ``options``: the limits and timers ``accept`` takes.
        """
        limits, timers = options_of(options)
        parts = urlsplit(url)
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.netloc:
            self.loop.call_soon(self._fail, UrlError(f"not a ws:// or wss:// URL: {url!r}"))
            return
        http_url = parts._replace(scheme=scheme, fragment="").geturl()
        extra = [(_bytes(n), _bytes(v)) for n, v in headers]
        config = DeflateConfig() if deflate is True else deflate or None
        hello = client_request(
            parts.netloc.encode("idna"), subprotocols=subprotocols, deflate=config, headers=extra
        )
        # The client sets Host, Upgrade and Connection itself (it strips hop-by-hop fields).
        fields: list[tuple[bytes | str, bytes | str]] = [
            (n, v) for n, v in hello.headers if n not in (b"Host", b"Upgrade", b"Connection")
        ]
        exchange = self.http_client.exchange()
        head: list[Any] = []

        def response_start(status: bytes, _phrase: bytes, res_headers: list[Any]) -> None:
            head[:] = [int(status), res_headers]

        def response_done(_trailers: object) -> None:
            status = head[0] if head else 0
            self._fail(HandshakeResponseError(f"status {status}, not 101"))

        def switched(tcp: TcpConnection, leftover: bytes) -> None:
            try:
                answer = hello.check(head[0], head[1])
            except HandshakeResponseError as error:
                tcp.abort()
                self._fail(error)
                return
            conn = Connection("client", deflate=answer.deflate, **limits)
            websocket = WebSocket(
                tcp, conn, loop=self.loop, subprotocol=answer.subprotocol, **timers
            )
            self.emit("open", websocket)
            websocket.start(leftover)

        exchange.on("response_start", response_start)
        exchange.on("response_done", response_done)
        exchange.on("switched", switched)
        exchange.on("error", self._fail)
        exchange.request_start(b"GET", http_url, fields, upgrade="websocket")
        exchange.request_done([])

    def _fail(self, error: HttpError) -> None:
        log.debug("websocket connect failed: %s", error)
        self.emit("error", error)

    def close(self) -> None:
        """Close the HTTP client's idle connections (open WebSockets are not affected)."""
        self.http_client.close()


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")
