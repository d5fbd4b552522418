"""Who the client is, when a trusted proxy says so (RFC 7239 and X-Forwarded-*).

Theory of operation.  The TCP peer is the client unless the peer is in
``--forwarded-allow-ips`` (addresses, CIDR networks, or ``*``; UNIX-socket
peers count as trusted when the list holds ``unix`` or ``*``).  From a trusted
peer the gateway reads, in this order of preference:

1. ``Forwarded`` (RFC 7239 §4): a list of elements, one appended by each
   proxy, nearest proxy last.  Walking from the end, each element's ``for=``
   names who connected to that proxy; the first one that is not itself a
   trusted proxy is the client (RFC 7239 §7.5: earlier elements are what the
   client claimed, and anyone can claim anything).  That element's ``proto=``
   and ``host=`` are the scheme and host the client used.
2. ``X-Forwarded-For`` (the same walk over its comma list, rightmost first),
   with ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (their last value).

Nothing here does IO; :class:`ProxyTrust` is built once from the setting and
asked per request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from thor.http.headers import get_values
from thor.memo import Memo

__all__ = ["ClientInfo", "ProxyTrust", "parse_forwarded"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PROXY_FIELDS = frozenset(
    (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
)
_PROXY_FIELD_LENGTHS = frozenset(len(name) for name in PROXY_FIELDS)
_CACHE_SIZE = 4096


def carries_proxy_fields(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether any field a proxy sets is present (most requests: no, found cheaply)."""
    # A plain loop with a length test: measured under callgrind, cheaper than joining the
    # names for one search in C (dict(), join() and lower() cost more than the loop saves),
    # for 3 fields as for 10.
    for name, _ in headers:
        if len(name) in _PROXY_FIELD_LENGTHS and name.lower() in PROXY_FIELDS:
            return True
    return False


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The client as the app should see it."""

    client: tuple[str, int] | None
    scheme: str
    host: bytes | None = None  # a Host value to use instead of the request's


class ProxyTrust:
    """Which peers are trusted proxies."""

    def __init__(self, allowed: list[str]) -> None:
        self.everyone = "*" in allowed
        self.unix = self.everyone or "unix" in allowed
        self.networks: list[IPNetwork] = []
        self._seen: Memo[str, bool] = Memo(_CACHE_SIZE)  # address -> trusted; peers repeat
        for item in allowed:
            if item in ("*", "unix"):
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (an IP in text) is a trusted proxy."""
        if self.everyone:
            return True
        known = self._seen.get(address)
        if known is None:
            known = self._trusts(address)
            self._seen.put(address, known)
        return known

    def trusts_peer(self, address: object) -> bool:
        """Whether a connection's peer, as ``accept()`` gave it (a tuple for IP, a string
        for a UNIX socket), is a trusted proxy (``--proxy-protocol`` asks, per connection)."""
        if address.__class__ is tuple:
            return self.trusts(address[0])
        return self.unix

    def _trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def resolve(
        self,
        peer: tuple[str, int] | None,
        scheme: str,
        headers: list[tuple[bytes, bytes]],
    ) -> ClientInfo:
        """The client, scheme and host for a request from ``peer`` (None: a UNIX socket)."""
        if not carries_proxy_fields(headers):  # the common case, without parsing an address
            return ClientInfo(peer, scheme)
        trusted = self.unix if peer is None else self.trusts(peer[0])
        if not trusted:
            return ClientInfo(peer, scheme)
        forwarded = get_values(headers, b"forwarded")
        if forwarded:
            elements = parse_forwarded(b",".join(forwarded))
            if elements is not None and elements:
                return self._from_elements(elements, peer, scheme)
        chain = [v.strip() for v in b",".join(get_values(headers, b"x-forwarded-for")).split(b",")]
        chain = [v for v in chain if v]
        client = peer
        if chain:
            client = _node(self._walk(chain))
        proto = _last(get_values(headers, b"x-forwarded-proto"))
        host = _last(get_values(headers, b"x-forwarded-host"))
        return ClientInfo(client, _scheme(proto, scheme), host or None)

    def _walk(self, chain: list[bytes]) -> bytes:
        """The rightmost address that is not a trusted proxy (or the leftmost one)."""
        for value in reversed(chain):
            host = _node(value)
            if host is None or not self.trusts(host[0]):
                return value
        return chain[0]

    def _from_elements(
        self, elements: list[dict[str, str]], peer: tuple[str, int] | None, scheme: str
    ) -> ClientInfo:
        chosen = elements[0]
        for element in reversed(elements):
            node = _node(element.get("for", "").encode("latin-1"))
            if node is None or not self.trusts(node[0]):
                chosen = element
                break
        client = _node(chosen.get("for", "").encode("latin-1")) if "for" in chosen else peer
        proto = chosen.get("proto", "").encode("latin-1")
        host = chosen.get("host", "").encode("latin-1")
        return ClientInfo(client, _scheme(proto, scheme), host or None)


def _last(values: list[bytes]) -> bytes:
    items = [v.strip() for v in b",".join(values).split(b",") if v.strip()]
    return items[-1] if items else b""


def _scheme(proto: bytes, default: str) -> str:
    proto = proto.lower()
    return proto.decode("ascii") if proto in (b"http", b"https") else default


def _node(value: bytes) -> tuple[str, int] | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[v6]:80``, ``v6`` -> (host, port); else None.

    RFC 7239 §6 also allows ``unknown`` and obfuscated ``_names``: those are
    kept as the host with port 0, so that the app sees what the proxy said.
    """
    text = value.strip().decode("latin-1")
    if not text:
        return None
    port = 0
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text) if port_text.isdigit() else 0
    else:
        host = text
    if host == "unknown" or host.startswith("_"):
        return host, port
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return None


def parse_forwarded(value: bytes) -> list[dict[str, str]] | None:
    """RFC 7239 §4 ``Forwarded`` -> one dict per element; None when malformed.

    ``forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )``,
    ``forwarded-pair = token "=" value``, ``value = token / quoted-string``;
    elements are comma-separated.  Parameter names are case-insensitive.
    """
    text = value.decode("latin-1")
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t;":
            i += 1
            continue
        if char == ",":
            elements.append(current)
            current = {}
            i += 1
            continue
        eq = text.find("=", i)
        if eq < 0:
            return None
        name = text[i:eq].strip().lower()
        if not name or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
            return None
        i = eq + 1
        if i < n and text[i] == '"':
            end, chars = i + 1, []
            while end < n and text[end] != '"':
                if text[end] == "\\" and end + 1 < n:
                    end += 1
                chars.append(text[end])
                end += 1
            if end >= n:
                return None
            current[name] = "".join(chars)
            i = end + 1
        else:
            end = i
            while end < n and text[end] not in ",;":
                end += 1
            current[name] = text[i:end].strip()
            i = end
    elements.append(current)
    return [e for e in elements if e]
