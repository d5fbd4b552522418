"""A stored body on its way to a client: from memory, or from the file the disk store keeps
it in (``Entry.file``), in chunks as the client drains or by ``sendfile``, as static files
are sent (:func:`thor_gateway.static.body.send_pieces`).

The file is opened before the response starts, and checked to be the one the entry was
read from (:func:`~thor_gateway.cache.disk.open_body`): another worker may have replaced or
removed it since.  When it was, the response cannot be the entry's, and a 503 says so (a
retry finds the new file); this takes a write by another process in the microseconds
between the store's listing and the open.
"""

from __future__ import annotations

from thor.http.exchange import Exchange
from thor_gateway.cache.disk import open_body
from thor_gateway.cache.keys import cache_status
from thor_gateway.cache.store import Entry
from thor_gateway.static.body import send_pieces

__all__ = ["GONE", "IN_MEMORY", "NO_BODY", "open_stored", "send_stored", "vanished"]

NO_BODY = -3  # a HEAD: the response ends after its head
IN_MEMORY = -2  # the body is ``entry.body``
GONE = -1  # the entry's file is no longer there
_HEAD = b"HEAD"
_NO_TRAILERS: list[tuple[bytes, bytes]] = []


def open_stored(entry: Entry, method: bytes) -> int:
    """Where ``entry``'s body is sent from: NO_BODY, IN_MEMORY, a descriptor of its file,
    or GONE."""
    if method == _HEAD:
        return NO_BODY
    file = entry.file
    return IN_MEMORY if file is None else open_body(file)


def send_stored(exchange: Exchange, entry: Entry, source: int, first: int, count: int) -> None:
    """Send ``count`` bytes of the body from ``first`` (after the response's head), then end
    the response; a descriptor ``source`` is taken over (closed when sent)."""
    if source >= 0:
        send_pieces(exchange, source, [(first, count)], True)
        return
    if source == IN_MEMORY and count:
        body = entry.whole()
        exchange.response_body(body if count == len(body) else body[first : first + count])
    exchange.response_done(_NO_TRAILERS)


def vanished(exchange: Exchange) -> None:
    """The 503 of a stored response whose file went between its lookup and its use."""
    body = b"the stored response changed; retry\n"
    exchange.response_start(
        503,
        b"Service Unavailable",
        [
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", b"%d" % len(body)),
            (b"Retry-After", b"0"),
            cache_status(b"fwd=miss", b"detail=stored-file-changed"),
        ],
    )
    exchange.response_body(body)
    exchange.response_done(_NO_TRAILERS)
