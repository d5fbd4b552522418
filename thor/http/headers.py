"""Helpers for header lists.

Headers are ``list[tuple[bytes, bytes]]`` in wire order. Names keep the case they
were sent with; values have their leading and trailing optional whitespace (OWS)
removed, as RFC 9112 §5.1 says the field value does not include it. This differs
from Thor 0.17, which kept the leading space of each value.

List-valued fields (RFC 9110 §5.6.1) are split on commas by ``get_header`` and
``header_dict``; do not use those for ``Set-Cookie`` (RFC 9110 §5.3), use
``get_values``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "HOP_BY_HOP",
    "PLAIN_CONNECTION_OPTIONS",
    "RawHeaderListType",
    "connection_tokens",
    "get_header",
    "get_values",
    "header_dict",
    "header_names",
    "split_list",
    "strip_hop_by_hop",
]

RawHeaderListType = list[tuple[bytes, bytes]]

# The one hop-by-hop set, for the writer, the client and the gateway's proxy alike.
# RFC 9110 §7.6.1 names Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding and
# Upgrade.  Proxy-Authenticate and Proxy-Authorization address only the next hop (RFC 9110
# §11.7.1, §11.7.2: relaying them is a MAY, for proxies that authenticate together), so
# they are not passed on either.  Trailer is not here: RFC 2616 §13.5.1 listed it, but
# RFC 9110 §6.6.2 makes it end-to-end (it announces the trailer fields, which are relayed).
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

# Connection values that name no other field to drop (by far the usual ones; Keep-Alive is
# hop-by-hop anyway).
PLAIN_CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close"})


def split_list(value: bytes) -> list[bytes]:
    """Split a #list value (RFC 9110 §5.6.1) on commas, dropping empty members."""
    return [m for m in (p.strip(b" \t") for p in value.split(b",")) if m]


def get_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Values of every field line called ``name`` (case-insensitive), not comma-split."""
    lname = name.lower()
    return [v for n, v in headers if n.lower() == lname]


def get_header(headers: RawHeaderListType, name: bytes) -> list[bytes]:
    """Comma-split values of ``name`` (case-insensitive); not for Set-Cookie."""
    out: list[bytes] = []
    for value in get_values(headers, name):
        out.extend(split_list(value))
    return out


def header_names(headers: RawHeaderListType) -> set[bytes]:
    """The lower-cased names present in ``headers``."""
    return {n.lower() for n, _ in headers}


def header_dict(headers: RawHeaderListType, omit: Iterable[bytes] = ()) -> dict[bytes, list[bytes]]:
    """Map lower-cased names to comma-split values, leaving out the names in ``omit``."""
    skip = {o.lower() for o in omit}
    out: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        lname = name.lower()
        if lname not in skip:
            out.setdefault(lname, []).extend(split_list(value))
    return out


def connection_tokens(headers: RawHeaderListType) -> set[bytes]:
    """Lower-cased connection options of every Connection field (RFC 9110 §7.6.1)."""
    return {t.lower() for t in get_header(headers, b"connection")}


def strip_hop_by_hop(headers: RawHeaderListType, also: Iterable[bytes] = ()) -> RawHeaderListType:
    """Drop hop-by-hop fields, the fields named in Connection, and those in ``also``."""
    drop = set(HOP_BY_HOP) | connection_tokens(headers) | {a.lower() for a in also}
    return [(n, v) for n, v in headers if n.lower() not in drop]
