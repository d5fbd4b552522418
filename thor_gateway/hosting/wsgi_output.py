"""What a WSGI app hands ``start_response``, checked and encoded for the wire.

PEP 3333 gives the server native strings holding latin-1; the server must not let
them corrupt the response: a status that is no status line part, a header name
that is no token, a value with CR, LF, NUL or another control, a hop-by-hop field
(the server owns the connection), a non-numeric ``Content-Length``.  Each is an
:class:`AppOutputError`, so the client gets a 500, never an injected header
(servers.md Appendix B49).  Valid statuses and header lists are remembered by value
(:class:`thor.memo.Memo`): apps send the same few over and over.
"""

from __future__ import annotations

import re

from thor.http.error import HttpError
from thor.http.headers import HOP_BY_HOP
from thor.http.protocol import abnf
from thor.memo import Memo

__all__ = ["AppOutputError", "StartResponseError", "encode_headers", "encode_status", "has_length"]

# The library's grammar (thor.http.protocol.abnf) as str patterns: WSGI's native strings
# hold latin-1, so the byte ranges there are the code point ranges here.
_TOKEN = abnf.TOKEN.decode("ascii")
_FIELD_CHAR = abnf.FIELD_CHAR.decode("ascii")
# PEP 3333 "The start_response() Callable": a status is "999 Reason"; RFC 9112 §4
# reason-phrase = *( HTAB / SP / VCHAR / obs-text ).  Apps may not send 1xx.
_STATUS_RE = re.compile(r"([2-5][0-9][0-9]) (" + _FIELD_CHAR + r"*)\Z")
# RFC 9110 §5.1 field-name = token; §5.5 field-value: no CR, LF, NUL or other CTL.
_NAME_RE = re.compile(_TOKEN + r"\Z")
_VALUE_RE = re.compile(_FIELD_CHAR + r"*\Z")
# PEP 3333: apps must not use hop-by-hop fields; the server owns the connection.  PEP 3333
# means RFC 2616's list (§13.5.1), which has Trailer too; a WSGI app cannot send trailers
# anyway, so announcing one is refused as before.
_HOP_BY_HOP = frozenset(name.decode("ascii") for name in HOP_BY_HOP | {b"trailer"})


class AppOutputError(HttpError):
    """The app gave an invalid status or header; the client gets a 500 (Appendix B49)."""

    desc = "Invalid response from the application"
    status = 500


class StartResponseError(AppOutputError):
    """start_response() or write() used against PEP 3333's rules."""

    desc = "start_response() misused"


# The encoded form of valid statuses and header lists, by value (thor_gateway.memo).
_CACHE_SIZE = 256
_STATUSES: Memo[str, tuple[int, bytes]] = Memo(_CACHE_SIZE)
_HEADER_LISTS: Memo[tuple[object, ...], tuple[tuple[bytes, bytes], ...]] = Memo(_CACHE_SIZE)


def encode_status(status: object) -> tuple[int, bytes]:
    """``"200 OK"`` -> ``(200, b"OK")``; AppOutputError unless it is a valid status line part."""
    if type(status) is not str:
        raise AppOutputError(f"status must be str, not {type(status).__name__}")
    known = _STATUSES.get(status)
    if known is not None:
        return known
    match = _STATUS_RE.match(status)
    if match is None:
        raise AppOutputError(f"invalid status {status!r}")
    encoded = int(match.group(1)), match.group(2).encode("latin-1")
    _STATUSES.put(status, encoded)
    return encoded


def encode_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """The app's header list as bytes; AppOutputError on anything that could corrupt the wire."""
    if type(headers) is not list:
        raise AppOutputError(f"headers must be a list, not {type(headers).__name__}")
    key, known = _HEADER_LISTS.lookup_items(headers)
    if known is not None:
        return list(known)  # a new list: the caller may append Content-Length
    encoded = _encode_headers(headers)  # an unhashable item is invalid: this says why
    if key is not None:
        _HEADER_LISTS.put(key, tuple(encoded))
    return encoded


def _encode_headers(headers: list[object]) -> list[tuple[bytes, bytes]]:
    encoded = []
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise AppOutputError(f"header {item!r} is not a (name, value) tuple")
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise AppOutputError(f"header {item!r}: name and value must be str")
        if not _NAME_RE.match(name):
            raise AppOutputError(f"invalid header name {name!r}")
        if not _VALUE_RE.match(value):
            raise AppOutputError(f"invalid value for header {name!r}: {value!r}")
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            raise AppOutputError(f"hop-by-hop header {name!r} is the server's to send")
        if lower == "content-length" and not (value.isascii() and value.isdigit()):
            raise AppOutputError(f"invalid Content-Length {value!r}")
        encoded.append((name.encode("latin-1"), value.encode("latin-1")))
    return encoded


def has_length(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, _ in headers:  # noqa: SIM110 - a loop, not any(genexpr): no generator per response
        if len(name) == 14 and name.lower() == b"content-length":
            return True
    return False
