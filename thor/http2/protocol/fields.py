"""Field validity for HTTP/2 messages (RFC 9113 §8.1, §8.2, §8.3).

A request, response or trailer section that breaks one of these rules is *malformed*
(§8.1.1): a stream error of type PROTOCOL_ERROR, never passed on.  The rules checked:

- names are lowercase tokens (§8.2.1, §8.2); values hold no NUL, CR or LF and neither start
  nor end with whitespace (§8.2.1);
- pseudo-header fields come before all others, appear once, are only the ones defined for a
  request (``:method :scheme :authority :path``, §8.3.1) or a response (``:status``,
  §8.3.2), and never in trailers (§8.1);
- no connection-specific field (``connection``, ``keep-alive``, ``proxy-connection``,
  ``transfer-encoding``, ``upgrade``) and ``te`` only as ``trailers`` (§8.2.2);
- a request has ``:method``, and unless it is CONNECT also ``:scheme`` and a non-empty
  ``:path``; CONNECT has ``:authority`` and neither ``:scheme`` nor ``:path`` (§8.5);
- ``:authority`` and ``host``, when both are present, name the same thing (§8.3.1);
- ``content-length`` is one decimal number (RFC 9110 §8.6); the caller checks it against
  the DATA received (§8.1.1).
"""

from __future__ import annotations

import re

from thor.http2.protocol.errors import H2StreamError
from thor.memo import Memo

__all__ = ["check_request", "check_response", "check_trailers"]

Fields = list[tuple[bytes, bytes]]

REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
RESPONSE_PSEUDO = frozenset({b":status"})
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_is_name = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z").match
_bad_value = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z").search
_is_length = re.compile(rb"[0-9]{1,18}\Z").match

# Fields seen valid, as (name, value): a connection's requests repeat most of their fields,
# and HPACK hands back the very same tuples for indexed ones.
_valid_fields: Memo[tuple[bytes, bytes], bool] = Memo(1024)
_known = _valid_fields.get
_remember = _valid_fields.put
_MAX_REMEMBERED_VALUE = 512


def _check_field(stream_id: int, name: bytes, value: bytes) -> None:
    if not _is_name(name):
        raise H2StreamError(stream_id, f"invalid field name {name[:40]!r} (§8.2.1)")
    if name in CONNECTION_SPECIFIC:
        raise H2StreamError(stream_id, f"connection-specific field {name!r} (§8.2.2)")
    if value and _bad_value(value):
        raise H2StreamError(stream_id, f"invalid value for {name!r} (§8.2.1)")
    if name == b"te" and value != b"trailers":
        raise H2StreamError(stream_id, "te other than 'trailers' (§8.2.2)")


def _content_length(stream_id: int, value: bytes, known: int) -> int:
    if not _is_length(value):
        raise H2StreamError(stream_id, "content-length not a number (§8.1.1)")
    length = int(value)
    if known >= 0 and known != length:
        raise H2StreamError(stream_id, "content-length values disagree (§8.1.1)")
    return length


def _split(
    stream_id: int, fields: Fields, allowed: frozenset[bytes]
) -> tuple[dict[bytes, bytes], int, bytes | None]:
    """Check every field; return the pseudo-header fields, the content length (-1: none)
    and the host field (None: none)."""
    pseudo: dict[bytes, bytes] = {}
    regular = False
    length = -1
    host = None
    for field in fields:
        name, value = field
        if name[:1] == b":":
            if regular:
                raise H2StreamError(stream_id, "pseudo-header after a regular field (§8.3)")
            if name not in allowed:
                raise H2StreamError(stream_id, f"pseudo-header {name!r} not allowed (§8.3)")
            if name in pseudo:
                raise H2StreamError(stream_id, f"pseudo-header {name!r} repeated (§8.3)")
            if _known(field) is None:
                if _bad_value(value):
                    raise H2StreamError(stream_id, f"invalid value for {name!r} (§8.2.1)")
                if len(value) < _MAX_REMEMBERED_VALUE:
                    _remember(field, True)
            pseudo[name] = value
            continue
        regular = True
        if _known(field) is None:
            _check_field(stream_id, name, value)
            if len(value) < _MAX_REMEMBERED_VALUE:
                _remember(field, True)
        if name == b"content-length":
            length = _content_length(stream_id, value, length)
        elif name == b"host":
            host = value
    return pseudo, length, host


def check_request(stream_id: int, fields: Fields) -> int:
    """Check a request head; return its content length, or -1 if it has none."""
    pseudo, length, host = _split(stream_id, fields, REQUEST_PSEUDO)
    method = pseudo.get(b":method")
    if not method:
        raise H2StreamError(stream_id, "request without :method (§8.3.1)")
    if method == b"CONNECT":
        if b":authority" not in pseudo or b":scheme" in pseudo or b":path" in pseudo:
            raise H2StreamError(stream_id, "CONNECT needs :authority alone (§8.5)")
    elif not pseudo.get(b":scheme") or not pseudo.get(b":path"):
        raise H2StreamError(stream_id, "request without :scheme or :path (§8.3.1)")
    if host is not None and b":authority" in pseudo and host != pseudo[b":authority"]:
        raise H2StreamError(stream_id, ":authority and host differ (§8.3.1)")
    return length


def check_response(stream_id: int, fields: Fields) -> tuple[int, int]:
    """Check a response head (client role); return its status and content length."""
    pseudo, length, _ = _split(stream_id, fields, RESPONSE_PSEUDO)
    status = pseudo.get(b":status", b"")
    if len(status) != 3 or not status.isdigit():
        raise H2StreamError(stream_id, "response without a valid :status (§8.3.2)")
    return int(status), length


def check_trailers(stream_id: int, fields: Fields) -> None:
    """Trailers carry no pseudo-header field (§8.1)."""
    _split(stream_id, fields, frozenset())
