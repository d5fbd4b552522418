"""Accepting a WebSocket from an ``HttpServer`` exchange (RFC 6455 §4.2).

``accept(exchange)`` checks the opening request with the sans-IO core, answers ``101
Switching Protocols``, takes the connection over (``exchange.take_over()``, docs/http.md)
and returns the open :class:`~thor.websocket.websocket.WebSocket`. A request that is not a
valid handshake is refused with the core's status (400, or 426 with
``Sec-WebSocket-Version: 13`` for another version, §4.4) and ``None`` is returned.

The exchange emits ``websocket(websocket)`` when it has become one: to the listeners set
before ``accept`` (a server that must close its WebSockets when it stops, for example),
since taking the connection over drops the exchange's listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from thor.http.exchange import Exchange
from thor.http.headers import get_header
from thor.websocket.protocol import (
    Connection,
    DeflateConfig,
    HandshakeError,
    Request,
    read_request,
)
from thor.websocket.protocol import accept as accept_request
from thor.websocket.websocket import WebSocket, options_of

__all__ = ["accept", "is_websocket_request", "refuse"]

log = logging.getLogger("thor.websocket")


def is_websocket_request(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when the request asks to upgrade to WebSocket (``Upgrade: websocket``, §4.1).

    Whether it is a *valid* handshake is ``accept``'s to check; this only tells a handler
    which way to go.
    """
    return any(value.lower() == b"websocket" for value in get_header(headers, b"upgrade"))


def refuse(exchange: Exchange, error: HandshakeError) -> None:
    """Answer a bad handshake with its status, its header fields and a short text."""
    exchange.respond(*error.as_response(extra=error.headers))


def read_handshake(exchange: Exchange) -> Request:
    """The opening request of ``exchange``; raises HandshakeError (400 / 426)."""
    return read_request(exchange.method, exchange.req_version, exchange.req_hdrs)


def accept(
    exchange: Exchange,
    *,
    subprotocols: Sequence[str] = (),
    headers: Iterable[tuple[bytes, bytes]] = (),
    deflate: DeflateConfig | bool = True,
    **options: Any,
) -> WebSocket | None:
    """Accept the WebSocket ``exchange`` asks for; None when it was refused (and answered).

    ``subprotocols``: ours, by preference; the first the client offered is chosen.
    ``headers``: more fields for the 101. ``deflate``: permessage-deflate (RFC 7692) when the
    client offers it (``True``: the defaults; a ``DeflateConfig``; ``False``: never).
    ``options``: the core's limits (``max_message_size``, ``max_frame_size``,
    ``max_decompressed_size``) and the WebSocket's timers (``ping_interval``,
    ``ping_timeout``, ``close_timeout``).
    Call it from the exchange's ``request_start`` listener or the server's ``exchange``
    event; the returned WebSocket's listeners may be set before the loop turns again.
    """
    limits, timers = options_of(options)
    try:
        request = read_handshake(exchange)
    except HandshakeError as error:
        log.info("websocket handshake refused (%d): %s", error.status, error.detail)
        refuse(exchange, error)
        return None
    config = DeflateConfig() if deflate is True else deflate or None
    answer = accept_request(request, subprotocols=subprotocols, deflate=config, headers=headers)
    exchange.response_start(101, b"Switching Protocols", answer.headers)
    # take_over() forgets the exchange's listeners: note who waits for the WebSocket first.
    watchers = exchange.listeners("websocket")  # type: ignore[attr-defined]
    switched = exchange.take_over()  # type: ignore[attr-defined]
    conn = Connection("server", deflate=answer.deflate, **limits)
    websocket = WebSocket(
        switched.tcp_conn, conn, loop=switched.loop, subprotocol=answer.subprotocol, **timers
    )
    for watch in watchers:
        watch(websocket)
    if switched.leftover:
        # Bytes after the handshake: read once the caller has set its listeners.
        switched.loop.call_soon(websocket.start, switched.leftover)
    return websocket
