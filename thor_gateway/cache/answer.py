"""Answering a request from a stored response (RFC 9111 §4): its head (the stored fields,
Age, Cache-Status, the length), a 304 when the client's own condition holds, a 206 or 416
when it asked for a range, a range from a stored part; and the 504 of ``only-if-cached``
when nothing stored answers (§5.2.1.7).  The body goes out as :mod:`.body` sends it.

The common hit (fresh, a request without directives, conditionals or range) does not come
here: ``CacheHandler.handle`` writes it itself, in one frame.
"""

from __future__ import annotations

from thor.http.exchange import Exchange
from thor_gateway.cache.body import GONE, open_stored, send_stored, vanished
from thor_gateway.cache.keys import (
    CONDITIONAL,
    NOT_SERVED,
    byte_range,
    cache_status,
    not_modified,
)
from thor_gateway.cache.store import Entry
from thor_gateway.routing.request import Request

__all__ = ["HIT", "conditional", "gateway_timeout", "serve", "serve_part"]

HIT = cache_status(b"hit")  # (never changed)
_HEAD = b"HEAD"
Headers = list[tuple[bytes, bytes]]


def conditional(headers: Headers) -> bool:
    """Does a request carry conditionals of its own (RFC 9110 §13.1)?"""
    return any(n.lower() in CONDITIONAL for n, _ in headers)


def serve(
    exchange: Exchange,
    request: Request,
    entry: Entry,
    age: float,
    status: bytes,
    ranged: list[bytes] | None = None,
    asks: bool | None = None,
) -> None:
    """Answer from ``entry``: with Age (§5.1), as a 304 if the client's condition holds,
    as a 206 or 416 if it asked for a range."""
    out = [
        *(entry.served or entry.serving()),
        (b"Age", b"%d" % age),
        HIT if status == b"hit" else cache_status(status),
    ]
    if ranged:
        length = entry.body_size
        part = byte_range(ranged, length)
        if part is False:
            out += [(b"Content-Range", b"bytes */%d" % length), (b"Content-Length", b"0")]
            exchange.response_start(416, b"Range Not Satisfiable", out)
            exchange.response_done([])
            return
        if isinstance(part, tuple):
            first, last = part
            source = open_stored(entry, request.method)
            if source == GONE:
                vanished(exchange)
                return
            out += [
                (b"Content-Range", b"bytes %d-%d/%d" % (first, last, length)),
                (b"Content-Length", b"%d" % (last - first + 1)),
            ]
            exchange.response_start(206, b"Partial Content", out)
            send_stored(exchange, entry, source, first, last - first + 1)
            return
    if asks is None:
        asks = conditional(request.headers)
    if asks and entry.status == 200 and not_modified(request.headers, entry.fields()):
        exchange.response_start(304, b"Not Modified", out)
        exchange.response_done([])
        return
    out += entry.length
    source = open_stored(entry, request.method)
    if source == GONE:
        vanished(exchange)
        return
    exchange.response_start(entry.status, entry.phrase, out)
    send_stored(exchange, entry, source, 0, entry.body_size)


def serve_part(
    exchange: Exchange,
    request: Request,
    part: Entry,
    held: tuple[int, int, int, int],
    age: float,
) -> None:
    """A range that a stored 206 holds: bytes ``first``-``last`` of ``total``."""
    first, last, total, offset = held
    source = open_stored(part, request.method)
    if source == GONE:
        vanished(exchange)
        return
    out = [
        (n, v)
        for n, v in part.fields()
        if n.lower() not in NOT_SERVED and n.lower() != b"content-range"
    ]
    out += [
        (b"Age", b"%d" % age),
        HIT,
        (b"Content-Range", b"bytes %d-%d/%d" % (first, last, total)),
        (b"Content-Length", b"%d" % (last - first + 1)),
    ]
    exchange.response_start(206, b"Partial Content", out)
    send_stored(exchange, part, source, offset, last - first + 1)


def gateway_timeout(exchange: Exchange, request: Request) -> None:
    body = b"" if request.method == _HEAD else b"not in the cache (only-if-cached)\n"
    exchange.response_start(
        504,
        b"Gateway Timeout",
        [
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", b"%d" % len(body)),
            cache_status(b"fwd=miss", b"detail=only-if-cached"),
        ],
    )
    if body:
        exchange.response_body(body)
    exchange.response_done([])
