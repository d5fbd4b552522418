"""The opening handshake (RFC 6455 §4), both sides, as pure functions over header lists.

Server::

    request = read_request(method, version, headers)   # HandshakeError (400 / 426) if invalid
    answer = accept(request, subprotocols=["chat"], deflate=DeflateConfig())
    # send "101 Switching Protocols" with answer.headers, then
    # Connection("server", deflate=answer.deflate)

Client::

    hello = client_request(b"example.com", subprotocols=["chat"], deflate=DeflateConfig())
    # send "GET /path HTTP/1.1" with hello.headers; on the response head:
    answer = hello.check(status, headers)               # HandshakeResponseError if invalid
    # Connection("client", deflate=answer.deflate)

Headers are ``list[tuple[bytes, bytes]]`` as in thor.http.protocol.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from secrets import token_bytes

from thor.http.headers import RawHeaderListType, get_header, get_values
from thor.websocket.protocol import deflate as _deflate
from thor.websocket.protocol.deflate import Deflate, DeflateConfig
from thor.websocket.protocol.errors import (
    HandshakeError,
    HandshakeResponseError,
    UnsupportedVersionError,
)

__all__ = [
    "Accepted",
    "ClientRequest",
    "Request",
    "accept",
    "accept_value",
    "client_request",
    "parse_extensions",
    "read_request",
]

# §1.3: the GUID concatenated to the key before hashing.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 6455 §9.1: extension = extension-token *( ";" extension-param ),
# extension-param = token [ "=" (token | quoted-string) ]; list members split on commas.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*;\s*({_TOKEN})(?:\s*=\s*({_TOKEN}|{_QUOTED}))?")
_EXTENSION = re.compile(rf"\s*({_TOKEN})")
_SEPARATOR = re.compile(r"\s*(?:,|\Z)")
_EMPTY = re.compile(r"[\s,]*")  # empty list members are allowed (RFC 9110 §5.6.1)


def accept_value(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (§4.2.2 step 5.4)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def parse_extensions(values: Iterable[bytes]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Sec-WebSocket-Extensions values as (name, [(param, value or None)]); ValueError if bad.

    Quoted values are unquoted (§9.1: a quoted value must still be a token once unquoted, which
    the parameters' own checks enforce).
    """
    out: list[tuple[str, list[tuple[str, str | None]]]] = []
    for raw in values:
        text = raw.decode("latin-1")
        pos = 0
        while pos < len(text):
            pos = _EMPTY.match(text, pos).end()  # type: ignore[union-attr]
            if pos == len(text):
                break
            match = _EXTENSION.match(text, pos)
            if match is None:
                raise ValueError(f"bad extension list {text!r}")
            name, params, pos = match.group(1).lower(), [], match.end()
            while (param := _PARAM.match(text, pos)) is not None:
                value = param.group(2)
                if value is not None and value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                params.append((param.group(1).lower(), value))
                pos = param.end()
            separator = _SEPARATOR.match(text, pos)
            if separator is None:
                raise ValueError(f"bad extension list {text!r}")
            pos = separator.end()
            out.append((name, params))
    return out


@dataclass(frozen=True, slots=True)
class Request:
    """A valid opening request: the key and what the client offers."""

    key: bytes
    subprotocols: list[str]
    extensions: list[tuple[str, list[tuple[str, str | None]]]]
    headers: RawHeaderListType


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of a handshake: the 101's header fields (server side), what is in force."""

    headers: RawHeaderListType
    subprotocol: str | None
    deflate: Deflate | None


def _has_token(headers: RawHeaderListType, name: bytes, token: bytes) -> bool:
    return any(value.lower() == token for value in get_header(headers, name))


def read_request(method: bytes, version: bytes, headers: RawHeaderListType) -> Request:
    """Check an opening request (§4.2.1); raise HandshakeError (400) or 426 for the version."""
    if method != b"GET":
        raise HandshakeError("the method must be GET")  # §4.1 item 2
    if version != b"1.1":
        raise HandshakeError("HTTP/1.1 is required")  # §4.1 item 2
    if not get_values(headers, b"host"):
        raise HandshakeError("no Host")  # §4.2.1 item 2
    if not _has_token(headers, b"upgrade", b"websocket"):
        raise HandshakeError("Upgrade must include websocket")  # item 3
    if not _has_token(headers, b"connection", b"upgrade"):
        raise HandshakeError("Connection must include upgrade")  # item 4
    keys = get_values(headers, b"sec-websocket-key")
    if len(keys) != 1 or not _is_key(keys[0]):
        raise HandshakeError("Sec-WebSocket-Key must be 16 bytes in base64")  # item 5
    if get_values(headers, b"sec-websocket-version") != [b"13"]:
        raise UnsupportedVersionError("Sec-WebSocket-Version must be 13")  # item 6, §4.4
    try:
        extensions = parse_extensions(get_values(headers, b"sec-websocket-extensions"))
    except ValueError as exc:
        raise HandshakeError(str(exc)) from None
    protocols = [p.decode("latin-1") for p in get_header(headers, b"sec-websocket-protocol")]
    return Request(keys[0], protocols, extensions, headers)


def _is_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


def accept(
    request: Request,
    *,
    subprotocols: Sequence[str] = (),
    deflate: DeflateConfig | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> Accepted:
    """The 101 answer (§4.2.2 step 5): the first of our ``subprotocols`` the client offered,
    permessage-deflate if ``deflate`` and the client offered an acceptable variant."""
    out: RawHeaderListType = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", accept_value(request.key)),
    ]
    chosen = next((p for p in subprotocols if p in request.subprotocols), None)
    if chosen is not None:
        out.append((b"Sec-WebSocket-Protocol", chosen.encode("latin-1")))
    negotiated = None
    if deflate is not None:
        found = _deflate.accept_offer(request.extensions, deflate)
        if found is not None:
            negotiated, value = found
            out.append((b"Sec-WebSocket-Extensions", value))
    out.extend(headers)
    return Accepted(out, chosen, negotiated)


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """The client's opening request: its header fields, and the check of the answer."""

    key: bytes
    headers: RawHeaderListType
    subprotocols: list[str] = field(default_factory=list)
    deflate: DeflateConfig | None = None

    def check(self, status: int, headers: RawHeaderListType) -> Accepted:
        """Validate the server's answer (§4.1, "the client MUST Fail the WebSocket
        Connection" list); raise HandshakeResponseError."""
        if status != 101:
            raise HandshakeResponseError(f"status {status}, not 101")
        if not _has_token(headers, b"upgrade", b"websocket"):
            raise HandshakeResponseError("Upgrade is not websocket")  # item 2
        if not _has_token(headers, b"connection", b"upgrade"):
            raise HandshakeResponseError("Connection has no upgrade")  # item 3
        if get_values(headers, b"sec-websocket-accept") != [accept_value(self.key)]:
            raise HandshakeResponseError("wrong Sec-WebSocket-Accept")  # item 4
        return Accepted([], self._subprotocol(headers), self._deflate(headers))

    def _subprotocol(self, headers: RawHeaderListType) -> str | None:
        # Item 6: a subprotocol that was not offered fails the connection.
        values = get_header(headers, b"sec-websocket-protocol")
        if not values:
            return None
        chosen = values[0].decode("latin-1")
        if len(values) > 1 or chosen not in self.subprotocols:
            raise HandshakeResponseError(f"subprotocol {chosen!r} was not offered")
        return chosen

    def _deflate(self, headers: RawHeaderListType) -> Deflate | None:
        # Item 5: an extension that was not offered fails the connection.
        try:
            extensions = parse_extensions(get_values(headers, b"sec-websocket-extensions"))
        except ValueError as exc:
            raise HandshakeResponseError(str(exc)) from None
        if not extensions:
            return None
        if self.deflate is None or len(extensions) > 1 or extensions[0][0] != _deflate.NAME:
            raise HandshakeResponseError("the server chose an extension we did not offer")
        negotiated = _deflate.check_response(extensions[0][1], self.deflate)
        if negotiated is None:
            raise HandshakeResponseError("invalid permessage-deflate parameters in the answer")
        return negotiated


def client_request(
    host: bytes,
    *,
    subprotocols: Sequence[str] = (),
    deflate: DeflateConfig | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    random: Callable[[int], bytes] = token_bytes,
) -> ClientRequest:
    """The header fields of a client's opening GET (§4.1), with a fresh key from ``random``."""
    key = base64.b64encode(random(16))
    out: RawHeaderListType = [
        (b"Host", host),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", key),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    if subprotocols:
        out.append((b"Sec-WebSocket-Protocol", ", ".join(subprotocols).encode("latin-1")))
    if deflate is not None:
        out.append((b"Sec-WebSocket-Extensions", _deflate.offer(deflate)))
    out.extend(headers)
    return ClientRequest(key, out, list(subprotocols), deflate)
