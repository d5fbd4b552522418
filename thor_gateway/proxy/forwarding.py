"""Header and target rewriting for a reverse proxy (RFC 9110 §7.6): pure functions.

Theory of operation: a gateway is the origin server for its client and a client of its
upstream, so it forwards what is end-to-end and replaces what is hop-by-hop:

- hop-by-hop fields go (RFC 9110 §7.6.1): Connection, Proxy-Connection, Keep-Alive, TE,
  Transfer-Encoding, Upgrade, the next-hop Proxy-Authenticate and Proxy-Authorization
  (§11.7), and every field the Connection field names; the set is the library's
  (:data:`thor.http.headers.HOP_BY_HOP`).  Trailer is end-to-end (RFC 9110 §6.6.2) and goes
  on.  The framing of the next hop is decided by the writer of that hop, never copied;
- ``Via`` gets this hop appended (RFC 9110 §7.6.3), with the protocol version of the message
  as it was *received*;
- the client's address, scheme and Host travel on in ``Forwarded`` (RFC 7239 §4) and the
  de-facto ``X-Forwarded-For`` / ``-Proto`` / ``-Host``; each is appended to what earlier
  proxies wrote, never replacing it (the upstream decides whom it trusts);
- a request that asks to switch protocols (RFC 9110 §7.8: ``Upgrade`` named in
  ``Connection``) has its ``Upgrade`` protocols handed back to the caller, who offers them
  to the upstream on this hop (:func:`request_headers`' ``upgrades``);
- ``Max-Forwards`` (RFC 9110 §7.6.2) is decremented on TRACE and OPTIONS; at 0 the gateway
  is the final recipient and answers itself;
- the request target becomes origin-form for the upstream, with the mount prefix stripped
  (or kept) and the upstream URL's own path prepended.

Nothing here does IO; the proxy calls these per request, so they stay simple loops over the
field list.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from thor.http.headers import (
    HOP_BY_HOP,
    PLAIN_CONNECTION_OPTIONS,
    connection_tokens,
    split_list,
    strip_hop_by_hop,
)
from thor.http.protocol.abnf import token_re as _token_re
from thor.memo import Memo

__all__ = [
    "asks_for_trailers",
    "forwarded_element",
    "max_forwards",
    "relay_response_headers",
    "request_headers",
    "response_headers",
    "switch_response_headers",
    "trace_body",
    "upstream_target",
    "via_value",
]

Headers = list[tuple[bytes, bytes]]

_TRACE_METHODS = frozenset({b"TRACE", b"OPTIONS"})


def via_value(version: bytes, pseudonym: bytes = b"thor") -> bytes:
    """``1.1 thor``: received-protocol then received-by (RFC 9110 §7.6.3).

    The protocol name is omitted because it is HTTP (``1.1``, not ``HTTP/1.1``).
    """
    return version + b" " + pseudonym


def _quote_if_needed(value: bytes) -> bytes:
    # RFC 9110 §5.6.2 token: a Forwarded value made only of tchars needs no quotes
    # (RFC 7239 §4).
    if _token_re.fullmatch(value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _node(client: tuple[str, int] | None) -> bytes:
    """RFC 7239 §6 node: an IPv4 address, a bracketed IPv6 address, or ``unknown``."""
    if not client:
        return b"unknown"
    host = client[0]
    if ":" in host:
        return b"[" + host.encode("ascii") + b"]"
    return host.encode("ascii")


def forwarded_element(client: tuple[str, int] | None, scheme: str, host: bytes | None) -> bytes:
    """One ``Forwarded`` element for this hop: ``for=...;proto=...;host=...`` (RFC 7239 §4)."""
    # A gateway sees the same few (client address, scheme, Host) again and again: remembered
    # (bounded: cleared when full, so many distinct clients cost one dict store each).
    key = (client[0] if client else None, scheme, host)
    element = _elements.get(key)
    if element is None:
        element = _forwarded_element(client, scheme, host)
        _elements.put(key, element)
    return element


_ELEMENTS_MAX = 1024
_elements: Memo[tuple[str | None, str, bytes | None], bytes] = Memo(_ELEMENTS_MAX)


def _forwarded_element(client: tuple[str, int] | None, scheme: str, host: bytes | None) -> bytes:
    parts = [b"for=" + _quote_if_needed(_node(client)), b"proto=" + scheme.encode("ascii")]
    if host:
        parts.append(b"host=" + _quote_if_needed(host))
    return b";".join(parts)


def max_forwards(method: bytes, headers: Headers) -> int | None:
    """The Max-Forwards value that applies to this request, or None (RFC 9110 §7.6.2).

    Only TRACE and OPTIONS honour it; an unparsable value is treated as absent (a
    recipient MAY ignore it for other methods, and we can't guess a meaning for junk).
    """
    if method not in _TRACE_METHODS:
        return None
    for name, value in headers:
        if name.lower() == b"max-forwards":
            return int(value) if value.isdigit() else None
    return None


def request_headers(
    headers: Headers,
    *,
    method: bytes = b"GET",
    version: bytes = b"1.1",
    client: tuple[str, int] | None,
    scheme: str,
    upstream_host: bytes,
    preserve_host: bool = False,
    pseudonym: bytes = b"thor",
    forwarded: bool = True,
    x_forwarded: bool = True,
    upgrades: list[bytes] | None = None,
) -> Headers:
    """The field list to send upstream for a request received with ``headers``.

    ``upstream_host`` is the upstream's authority (``host[:port]``), used for Host unless
    ``preserve_host``.  ``client`` and ``scheme`` are the client's address and scheme as
    the gateway established them (after any trusted proxy headers).

    ``Upgrade`` is hop-by-hop and never in the list returned; when ``upgrades`` is given
    and the request asks to switch (HTTP/1.1, ``upgrade`` among its Connection options:
    RFC 9110 §7.8), the protocols it offers are appended to ``upgrades``, for the caller
    to offer on the next hop with ``Connection: upgrade``.  ``h2c`` is left out: it
    upgrades one connection with its own settings (``HTTP2-Settings``, hop-by-hop), which
    a proxy cannot pass on (RFC 7540 §3.2; RFC 9113 §3.1 retired it).
    """
    trace = method in _TRACE_METHODS
    out: Headers = []
    host: bytes | None = None
    xff: bytes | None = None
    mf: int | None = None
    named: set[bytes] | None = None  # what Connection lists, dropped after the loop
    for name, value in headers:
        lname = name.lower()
        if lname in HOP_BY_HOP:  # RFC 9110 §7.6.1 (thor.http.headers: one set)
            if lname == b"connection":
                named = connection_tokens(headers)
            continue
        if lname == b"host":
            host = value
            continue  # re-added first, below
        if lname == b"x-forwarded-for":
            # Several field lines combine into one list (RFC 9110 §5.3).
            xff = value if xff is None else xff + b", " + value
            continue
        if trace and lname == b"max-forwards" and value.isdigit():
            mf = int(value)
            continue
        out.append((name, value))
    if named is not None:
        out = [(n, v) for n, v in out if n.lower() not in named]
        if b"x-forwarded-for" in named:
            xff = None
        if upgrades is not None and b"upgrade" in named and version == b"1.1":
            upgrades.extend(_switch_offer(headers))
    # RFC 9112 §3.2: a client MUST send Host; it goes first, as user agents do.
    out.insert(0, (b"Host", host if preserve_host and host else upstream_host))
    if mf is not None:
        # RFC 9110 §7.6.2: decrement; a 0 never gets here (the gateway answers it itself).
        out.append((b"Max-Forwards", str(max(mf - 1, 0)).encode("ascii")))
    out.append((b"Via", via_value(version, pseudonym)))
    if forwarded:
        out.append((b"Forwarded", forwarded_element(client, scheme, host)))
    if x_forwarded:
        node = client[0].encode("ascii") if client else b"unknown"
        out.append((b"X-Forwarded-For", node if xff is None else xff + b", " + node))
        out.append((b"X-Forwarded-Proto", scheme.encode("ascii")))
        if host:
            out.append((b"X-Forwarded-Host", host))
    return out


def asks_for_trailers(headers: Headers) -> bool:
    """Does the request say ``TE: trailers`` (RFC 9110 §10.1.4)?  TE is hop-by-hop, so
    ``request_headers`` drops it; a proxy that relays trailers may say it again on the next
    hop, and must for gRPC over HTTP/2, whose servers require it."""
    return any(
        len(name) == 2
        and name.lower() == b"te"
        and b"trailers" in {t.lower() for t in split_list(value)}
        for name, value in headers
    )


def _switch_offer(headers: Headers) -> list[bytes]:
    """The protocols an HTTP/1.1 request that names ``upgrade`` in Connection offers to
    switch to, as the next hop may see them (RFC 9110 §7.8: a sender of Upgrade MUST list
    it in Connection; a server MUST ignore Upgrade in an HTTP/1.0 request)."""
    values = [v for n, v in headers if len(n) == 7 and n.lower() == b"upgrade"]
    protocols = [p for value in values for p in split_list(value)]
    return [p for p in protocols if p.lower() != b"h2c"]


def relay_response_headers(
    headers: Headers, version: bytes, pseudonym: bytes = b"thor"
) -> tuple[Headers, bool]:
    """(``headers`` with Via appended, whether a transfer coding other than chunked is used).

    For the proxy's hot path: hop-by-hop fields are left for the server's response writer,
    which drops them (and those Connection names) as it frames the response for its own hop.
    A coding other than chunked (RFC 9112 §6.1) cannot be undone here, so it is reported.
    """
    foreign = False
    out: Headers = []
    for pair in headers:  # (the parser's pairs, relayed as they are: no new tuple each)
        name, value = pair
        size = len(name)
        if size == 17 and name.lower() == b"transfer-encoding":
            codings = [c.strip(b" \t").lower() for c in value.split(b",")]
            foreign = foreign or any(c and c != b"chunked" for c in codings)
        elif (
            size == 10
            and value.lower() in PLAIN_CONNECTION_OPTIONS
            and name.lower() == b"connection"
        ):
            continue  # names no field: nothing for the writer to split and look up
        out.append(pair)
    out.append((b"Via", version + b" " + pseudonym))
    return out, foreign


def switch_response_headers(
    headers: Headers, version: bytes, pseudonym: bytes = b"thor"
) -> Headers:
    """The fields of a 101 to relay: the upstream's end-to-end ones (``Sec-WebSocket-*``...),
    then ``Upgrade`` (the protocols switched to) with ``Connection: upgrade``, then Via.

    RFC 9110 §15.2.2: a 101 MUST say in Upgrade which protocols the connection switches to;
    §7.8: Upgrade is hop-by-hop, so its sender lists it in Connection, on this hop too.
    """
    protocols = [v for n, v in headers if n.lower() == b"upgrade"]
    out = strip_hop_by_hop(headers)
    out.extend((b"Upgrade", v) for v in protocols)
    out.append((b"Connection", b"upgrade"))
    out.append((b"Via", via_value(version, pseudonym)))
    return out


def response_headers(headers: Headers, *, version: bytes, pseudonym: bytes = b"thor") -> Headers:
    """The field list to send to the client for an upstream response received with ``headers``."""
    out = strip_hop_by_hop(headers)
    out.append((b"Via", via_value(version, pseudonym)))
    return out


def _raw_rest(raw_path: bytes, prefix: bytes) -> bytes | None:
    """The raw (still percent-encoded) part of ``raw_path`` after the decoded ``prefix``.

    The prefix is matched segment by segment on decoded values, so ``/a%20b/x`` under the
    mount ``/a b`` gives ``/x`` with the client's own encoding of the rest kept intact.
    """
    if not prefix:
        return raw_path
    want = prefix.rstrip(b"/")
    pos = 0
    decoded = b""
    while len(decoded) < len(want):
        nxt = raw_path.find(b"/", pos + 1)
        end = len(raw_path) if nxt < 0 else nxt
        decoded += unquote_to_bytes(raw_path[pos:end])
        pos = end
        if nxt < 0:
            break
    if decoded != want:
        return None
    return raw_path[pos:]


def upstream_target(
    raw_path: bytes,
    query: bytes,
    prefix: bytes,
    base_path: bytes = b"",
    *,
    strip_prefix: bool = True,
    has_query: bool | None = None,
) -> bytes:
    """The origin-form target for the upstream (RFC 9112 §3.2.1).

    ``raw_path`` is the client's raw path, ``prefix`` the decoded mount prefix it matched,
    ``base_path`` the path of the upstream URL (``/v2`` for ``http://h:p/v2``).  With
    ``strip_prefix`` the prefix is replaced by ``base_path``, else ``base_path`` is put in
    front of the whole path.  ``has_query`` keeps a bare ``?`` the client sent.
    """
    rest = raw_path
    if strip_prefix:
        stripped = _raw_rest(raw_path, prefix)
        if stripped is not None:  # None: the prefix came from a root path, not the raw path
            rest = stripped
    base = base_path.rstrip(b"/")
    path = base + rest if rest.startswith(b"/") or not rest else base + b"/" + rest
    if not path:
        path = b"/"
    if query or has_query:
        path += b"?" + query
    return path


def trace_body(method: bytes, target: bytes, version: bytes, headers: Headers) -> bytes:
    """The ``message/http`` body a final recipient of TRACE sends back (RFC 9110 §9.3.8).

    Fields that may carry credentials are left out, as the RFC asks of a recipient.
    """
    secret = {b"authorization", b"proxy-authorization", b"cookie"}
    lines = [b"%s %s HTTP/%s" % (method, target, version)]
    lines.extend(b"%s: %s" % (n, v) for n, v in headers if n.lower() not in secret)
    return b"\r\n".join(lines) + b"\r\n\r\n"
