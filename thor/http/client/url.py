"""What the HTTP client does to a request before sending it: the URL and the header fields.

- ``parse_url``: absolute ``http``/``https`` URIs only (RFC 9110 §4.2), and ``h2c`` (an
  ``http`` origin spoken to in HTTP/2 with prior knowledge, RFC 9113 §3.3), no userinfo
  (§4.2.4: a sender MUST NOT generate it), IPv6 literals in brackets (RFC 3986 §3.2.2);
  the fragment is dropped (RFC 9110 §4.2.5: never sent).
- ``outgoing_headers``: ``Host`` from the authority (RFC 9112 §3.2: it MUST be sent, and
  §7.2 makes it identical to the authority of the target URI), hop-by-hop fields removed
  (RFC 9110 §7.6.1) except ``TE: trailers``, which we can honour.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import NamedTuple

from thor.http import error
from thor.http.headers import HOP_BY_HOP, RawHeaderListType, split_list
from thor.http.protocol import abnf
from thor.memo import Memo

__all__ = [
    "IDEMPOTENT_METHODS",
    "Origin",
    "Url",
    "connect_url",
    "outgoing_headers",
    "parse_url",
    "prepare_headers",
    "to_bytes",
    "tunnel_target",
    "with_connection_options",
    "with_upgrade",
]

# RFC 9110 §9.2.2.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})

Origin = tuple[str, str, int]  # ("http" | "https" | "h2c", host (lower case, no brackets), port)

_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3986 §3.2.2 reg-name = *( unreserved / pct-encoded / sub-delims )
_REG_NAME = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=%]+")
_PORT = re.compile(rb"[0-9]{1,5}")
_TARGET = abnf.target_re  # never empty here: "/" stands for it
_DEFAULT_PORTS = {"http": 80, "https": 443, "h2c": 80}
# A proxy talks to few origins with many paths: the origin part of a URI is parsed once.
_ORIGIN_CACHE_SIZE = 1024
_origins: Memo[tuple[bytes, bytes], tuple[str, str, int]] = Memo(_ORIGIN_CACHE_SIZE)
# And a fan-out calls the same few URIs again and again: whole URIs are remembered too (the
# cache is cleared when full, so a proxy's endless distinct paths cost one dict store each).
_URL_CACHE_SIZE = 1024
_urls: Memo[bytes, Url] = Memo(_URL_CACHE_SIZE)


class Url(NamedTuple):
    scheme: str  # "http", "https" or "h2c"
    host: str  # lower case, without brackets: what to connect to
    port: int
    authority: bytes  # as written, for the Host field
    target: bytes  # origin-form request target (RFC 9112 §3.2.1)


def to_bytes(value: bytes | str, encoding: str) -> bytes:
    """``value`` as bytes; str is encoded with ``encoding``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode(encoding)
        except UnicodeEncodeError:
            raise error.OutputSyntaxError(f"cannot encode {value[:40]!r} as {encoding}") from None
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise error.OutputSyntaxError(f"expected bytes or str, got {type(value).__name__}")


def parse_url(uri: bytes) -> Url:
    """Split an absolute http(s) URI; raises ``UrlError``."""
    url = _urls.get(uri)
    if url is None:
        url = _parse_url(uri)
        _urls.put(uri, url)
    return url


def _parse_url(uri: bytes) -> Url:
    scheme_end = uri.find(b"://")
    if scheme_end <= 0:
        raise error.UrlError(f"not an absolute URI: {uri[:80]!r}")
    start = scheme_end + 3
    end = len(uri)
    for delimiter in (b"/", b"?", b"#"):  # RFC 3986 §3.2: the authority ends at any of them
        found = uri.find(delimiter, start, end)
        if found >= 0:
            end = found
    raw_scheme = uri[:scheme_end]
    authority = uri[start:end]
    key = (raw_scheme, authority)
    origin = _origins.get(key)
    if origin is None:
        origin = _parse_origin(raw_scheme, authority)
        _origins.put(key, origin)
    target = uri[end:]
    fragment = target.find(b"#")
    if fragment >= 0:
        target = target[:fragment]
    if not target:
        target = b"/"
    elif target[0] == 0x3F:  # "?"
        target = b"/" + target
    if _TARGET.fullmatch(target) is None:
        raise error.UrlError("invalid characters in the URI path or query")
    return Url(origin[0], origin[1], origin[2], authority, target)


def _parse_origin(raw_scheme: bytes, authority: bytes) -> tuple[str, str, int]:
    if _SCHEME.fullmatch(raw_scheme) is None:
        raise error.UrlError(f"invalid scheme {raw_scheme[:20]!r}")
    scheme = raw_scheme.lower().decode("ascii")
    if scheme not in _DEFAULT_PORTS:
        raise error.UrlError(f"unsupported scheme {scheme!r}")
    if b"@" in authority:
        raise error.UrlError("userinfo in the URI")
    host, port_part = _split_authority(authority)
    if port_part:
        if not _PORT.fullmatch(port_part) or not 0 < int(port_part) < 65536:
            raise error.UrlError(f"invalid port {port_part[:10]!r}")
        return scheme, host, int(port_part)
    return scheme, host, _DEFAULT_PORTS[scheme]


def connect_url(method: bytes, url: Url, tunnel_to: bytes | str | None) -> Url:
    """``url`` for a CONNECT request: still connected to ``url``'s host and port, with the
    tunnel's end as the request-target and as ``Host`` (RFC 9110 §9.3.6)."""
    if method != b"CONNECT" or tunnel_to is None:
        raise error.UrlError("CONNECT needs tunnel_to, and tunnel_to needs CONNECT")
    target = tunnel_target(to_bytes(tunnel_to, "ascii"))
    return url._replace(target=target, authority=target)


def tunnel_target(target: bytes) -> bytes:
    """``target`` if it is a CONNECT request-target, else ``UrlError``: authority-form,
    ``host:port`` with the port given (RFC 9112 §3.2.3, RFC 9110 §9.3.6)."""
    if b"@" in target:
        raise error.UrlError("userinfo in the CONNECT target")
    _, port = _split_authority(target)
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise error.UrlError(f"CONNECT needs host:port, not {target[:80]!r}")
    return target


def _split_authority(authority: bytes) -> tuple[str, bytes]:
    """(host to connect to, port text) of ``authority``."""
    if authority[:1] == b"[":
        end = authority.find(b"]")
        if end < 0:
            raise error.UrlError("unterminated IPv6 literal")
        literal = authority[1:end].decode("ascii", "replace")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise error.UrlError(f"invalid IPv6 literal {literal[:50]!r}") from None
        rest = authority[end + 1 :]
        if rest and rest[:1] != b":":
            raise error.UrlError("junk after the IPv6 literal")
        return literal.lower(), rest[1:]
    host, _, port = authority.partition(b":")
    if not _REG_NAME.fullmatch(host):
        raise error.UrlError(f"invalid host {host[:80]!r}")
    return host.decode("ascii").lower(), port


def outgoing_headers(
    headers: RawHeaderListType, authority: bytes, preserve_host: bool, keep_alive: bool
) -> tuple[RawHeaderListType, bool]:
    """(fields to send, whether the request expects 100-continue).

    ``Host`` comes first (RFC 9110 §7.2 SHOULD), from the authority unless ``preserve_host``
    and the caller gave one. ``Content-Length`` is kept (the writer checks it);
    ``Transfer-Encoding`` is the writer's to decide.
    """
    _, out, expect_continue = prepare_headers(headers, authority, preserve_host, keep_alive)
    return out, expect_continue


def prepare_headers(
    headers: Iterable[tuple[bytes | str, bytes | str]],
    authority: bytes,
    preserve_host: bool,
    keep_alive: bool,
) -> tuple[RawHeaderListType, RawHeaderListType, bool]:
    """(the caller's fields as bytes, the fields to send, whether 100-continue is expected).

    What :func:`outgoing_headers` does, in one pass over the fields that also encodes them
    (this runs for every request a proxy or a fan-out makes). The result for a list of fields
    is remembered (small ones, bounded): a proxy forwards the same fields from the same
    clients again and again. The lists returned are the caller's own.
    """
    key: tuple[object, ...] | None = None
    if headers.__class__ is list:  # (an iterator would be used up by the key)
        key = (authority, preserve_host, keep_alive, *headers)
        try:
            known = _prepared.get(key)
        except TypeError:  # a [name, value] list, say: worked out every time
            key = known = None
        if known is not None:
            return list(known[0]), list(known[1]), known[2]
    given, out, expect_continue = _prepare_headers(headers, authority, preserve_host, keep_alive)
    if key is not None and sum([len(n) + len(v) for n, v in given]) <= _PREPARED_MAX_BYTES:
        _prepared.put(key, (tuple(given), tuple(out), expect_continue))
    return given, out, expect_continue


# Fields -> what prepare_headers made of them, for lists of at most _PREPARED_MAX_BYTES.
_PREPARED_MAX_BYTES = 2048
_prepared: Memo[
    tuple[object, ...],
    tuple[tuple[tuple[bytes, bytes], ...], tuple[tuple[bytes, bytes], ...], bool],
] = Memo(256)


def _prepare_headers(
    headers: Iterable[tuple[bytes | str, bytes | str]],
    authority: bytes,
    preserve_host: bool,
    keep_alive: bool,
) -> tuple[RawHeaderListType, RawHeaderListType, bool]:
    """prepare_headers' work, without the memo."""
    given: RawHeaderListType = []
    out: RawHeaderListType = []
    host: bytes | None = None
    te_trailers = False
    expect_continue = False
    named: set[bytes] | None = None  # what Connection fields list, dropped after the loop
    for name, value in headers:
        if name.__class__ is not bytes or value.__class__ is not bytes:
            name, value = to_bytes(name, "latin-1"), to_bytes(value, "latin-1")
        given.append((name, value))
        lname = name.lower()
        if lname in _SPECIAL:
            if lname == b"host":
                if preserve_host and host is None:
                    host = value
            elif lname == b"te":
                # RFC 9110 §10.1.4: "trailers" is the only TE member we can honour.
                te_trailers = te_trailers or b"trailers" in {t.lower() for t in split_list(value)}
            elif lname == b"connection":
                if named is None:
                    named = set()
                named.update(t.lower() for t in split_list(value))
            elif lname == b"expect":
                expect_continue = expect_continue or value.lower() == b"100-continue"
                out.append((name, value))
            # else: another hop-by-hop field (RFC 9110 §7.6.1)
        else:
            out.append((name, value))
    if named:
        # RFC 9110 §7.6.1: the fields Connection names are hop-by-hop too (never Host or TE,
        # which are handled above).
        named -= _KEPT_ANYWAY
        if named:
            out = [(n, v) for n, v in out if n.lower() not in named]
            expect_continue = expect_continue and b"expect" not in named
    out.insert(0, (b"Host", host if host is not None else authority))
    return given, with_connection_options(out, te_trailers, keep_alive), expect_continue


def with_connection_options(
    out: RawHeaderListType, te_trailers: bool, keep_alive: bool
) -> RawHeaderListType:
    """``out`` with the TE and Connection fields this client adds (it is appended to)."""
    if te_trailers:
        out.append((b"TE", b"trailers"))
        if keep_alive:
            out.append((b"Connection", b"TE"))  # RFC 9110 §7.6.1: TE is a connection option
        else:
            out.append((b"Connection", b"TE, close"))
    elif not keep_alive:
        out.append((b"Connection", b"close"))  # no idle_timeout: no reuse (Thor 0.17)
    return out


# Names prepare_headers looks at: Host, TE, Expect and the hop-by-hop fields.
_SPECIAL = HOP_BY_HOP | {b"host", b"expect"}
_KEPT_ANYWAY = frozenset({b"host", b"te"})


def with_upgrade(out: RawHeaderListType, protocols: bytes) -> RawHeaderListType:
    """``out`` offering a protocol switch to ``protocols`` (RFC 9110 §7.8): the ``Upgrade``
    field, named in ``Connection`` (it is hop-by-hop) with the options already there."""
    options = [v for n, v in out if n == b"Connection"]
    kept = [(n, v) for n, v in out if n != b"Connection"]
    kept.append((b"Upgrade", protocols))
    kept.append((b"Connection", b", ".join([*options, b"Upgrade"])))
    return kept
