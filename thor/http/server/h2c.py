"""HTTP/1.1 to cleartext HTTP/2 (h2c): the connection preface and the ``Upgrade: h2c`` request.

Pure helpers for the server connection (``connection.py``), which hands a connection that
starts with :data:`PREFACE` (prior knowledge, RFC 9113 §3.3) or whose request asks for
``Upgrade: h2c`` (RFC 7540 §3.2, still sent by some clients) to the HTTP/2 server.
"""

from __future__ import annotations

from thor.http.headers import HOP_BY_HOP
from thor.http.protocol import RequestHead

__all__ = ["PREFACE", "SWITCH_FIELDS", "h2c_upgrade_fields"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
# The 101 that accepts ``Upgrade: h2c`` (RFC 7540 §3.2).
SWITCH_FIELDS = ((b"Connection", b"Upgrade"), (b"Upgrade", b"h2c"))

# RFC 9113 §8.2.2: no connection-specific field crosses into HTTP/2 (the one hop-by-hop set),
# nor the field RFC 7540 §3.2 spends on the upgrade itself.
_NOT_FORWARDED = HOP_BY_HOP | {b"http2-settings"}


def h2c_upgrade_fields(head: RequestHead) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """For a request asking ``Upgrade: h2c`` with one ``HTTP2-Settings`` (RFC 7540 §3.2):
    the settings value and the request as HTTP/2 fields (pseudo-headers first, names
    lowercase, connection fields left out); None for any other request."""
    upgrade = settings = None
    rest: list[tuple[bytes, bytes]] = []
    host = b""
    for name, value in head.headers:
        lname = name.lower()
        if lname == b"upgrade":
            upgrade = value
        elif lname == b"http2-settings":
            if settings is not None:
                return None
            settings = value.strip()
        elif lname == b"host":
            host = value
        elif lname not in _NOT_FORWARDED:
            rest.append((lname, value))
    if upgrade is None or settings is None:
        return None
    if b"h2c" not in [token.strip().lower() for token in upgrade.split(b",")]:
        return None
    pseudo = [(b":method", head.method), (b":scheme", b"http"), (b":path", head.target)]
    if host:
        pseudo.append((b":authority", host))
    return settings, pseudo + rest
