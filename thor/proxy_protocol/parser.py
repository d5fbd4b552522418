"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-IO.

Theory of operation.  A proxy that speaks the PROXY protocol opens each connection to the
server with one header naming the client it relays, then the client's bytes follow
unchanged.  :class:`ProxyHeaderParser` is fed what arrives (whole, a byte at a time, or
split anywhere) and answers ``None`` until the header is complete, then the
:class:`ProxyHeader`; what came after the header is :attr:`~ProxyHeaderParser.trailing_data`,
the first bytes of the relayed stream.  A header that cannot be one raises a
:class:`ProxyProtocolError` subclass as soon as the bytes prove it (a byte that no
signature allows fails at once, without waiting for more).

The two versions (proxy-protocol.txt §2.1 and §2.2)::

    v1: "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
        "PROXY" SP "UNKNOWN" *( any byte but CR ) CRLF         -- at most 107 bytes in all
    v2: \\r\\n\\r\\n\\0\\r\\nQUIT\\n  (12 bytes)  ver_cmd  fam_proto  len (2 bytes, network order)
        then ``len`` bytes: the addresses of the family, then TLVs (type, 2-byte length, value)

The stages of the parser, and the moves between them, are the table :data:`MOVES`: DETECT
holds the bytes until they match one signature; V1 waits for the CRLF; V2 waits for the
16 fixed bytes and then the ``len`` bytes they announce.  The parser imports no IO module
(tests/test_sans_io.py checks it): the socket side is :mod:`thor.tcp_proxy_protocol`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from thor.http.error import ThorError

__all__ = [
    "V1_MAX_LENGTH",
    "V2_SIGNATURE",
    "AddressError",
    "Family",
    "FamilyError",
    "HeaderTooLongError",
    "PortError",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "SignatureError",
    "Transport",
    "VersionError",
]

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # §2.1: "a receiver may ... never read more than 107 bytes"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # §2.2: 12 bytes no HTTP/1 request starts with
V2_FIXED_LENGTH = 16  # the signature, ver_cmd, fam_proto and the 2-byte length
DEFAULT_MAX_V2_LENGTH = 4096  # addresses and TLVs; the field allows 65535 (§2.2)


class ProxyProtocolError(ThorError):
    """The bytes are not a PROXY header.  ``status`` 400: the peer sent something wrong
    (a server has no reliable way to answer it, though: it closes the connection)."""

    status = 400
    desc = "Bad PROXY protocol header"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.desc}: {detail}" if detail else self.desc)
        self.detail = detail


class SignatureError(ProxyProtocolError):
    desc = "Not a PROXY protocol header"


class HeaderTooLongError(ProxyProtocolError):
    desc = "PROXY header too long"


class AddressError(ProxyProtocolError):
    desc = "Bad address in the PROXY header"


class PortError(ProxyProtocolError):
    desc = "Bad port in the PROXY header"


class VersionError(ProxyProtocolError):
    desc = "Unsupported PROXY protocol version or command"


class FamilyError(ProxyProtocolError):
    desc = "Unknown address family or transport in the PROXY header"


class Family(Enum):
    """The address family (§2.2, the high nibble of the 14th byte; v1's protocol word)."""

    UNSPEC = 0x0
    INET = 0x1
    INET6 = 0x2
    UNIX = 0x3


class Transport(Enum):
    """The transport protocol (§2.2, the low nibble of the 14th byte)."""

    UNSPEC = 0x0
    STREAM = 0x1
    DGRAM = 0x2


Address = tuple[str, int] | str  # (ip, port), or a UNIX socket's path


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One parsed header.  ``length`` is its size on the wire."""

    version: int  # 1 or 2
    local: bool  # v2 LOCAL: the proxy's own connection (a health check): no client relayed
    family: Family
    transport: Transport
    source: Address | None  # None: not given (v1 UNKNOWN, v2 LOCAL or UNSPEC)
    destination: Address | None
    length: int
    tlvs: tuple[tuple[int, bytes], ...] = ()  # v2 type-length-values, in order

    @property
    def client(self) -> tuple[str, int] | None:
        """The relayed client's (ip, port) to use instead of the connection's peer; None
        keeps the peer (LOCAL and UNKNOWN, §2.1 and §2.2, and UNIX, which names no IP)."""
        source = self.source
        return source if isinstance(source, tuple) else None


class Stage(Enum):
    DETECT = "detect"  # which signature the bytes so far match
    V1 = "v1"  # up to the CRLF
    V2 = "v2"  # the fixed 16 bytes, then the length they announce
    DONE = "done"
    FAILED = "failed"


# The stage table: a move not listed here is a bug, and raises KeyError.
MOVES: dict[Stage, frozenset[Stage]] = {
    Stage.DETECT: frozenset({Stage.V1, Stage.V2, Stage.FAILED}),
    Stage.V1: frozenset({Stage.DONE, Stage.FAILED}),
    Stage.V2: frozenset({Stage.DONE, Stage.FAILED}),
    Stage.DONE: frozenset(),
    Stage.FAILED: frozenset(),
}

_V1_FAMILIES = {b"TCP4": Family.INET, b"TCP6": Family.INET6}
_V2_ADDRESS_SIZES = {Family.UNSPEC: 0, Family.INET: 12, Family.INET6: 36, Family.UNIX: 216}
_IP_SIZES = {Family.INET: 4, Family.INET6: 16}
_UNIX_PATH_SIZE = 108  # §2.2: sun_path, NUL-padded
_PORT_DIGITS = frozenset(b"0123456789")


class ProxyHeaderParser:
    """Feed bytes with :meth:`feed` until it returns the :class:`ProxyHeader`."""

    def __init__(self, max_v2_length: int = DEFAULT_MAX_V2_LENGTH) -> None:
        self.max_v2_length = max_v2_length
        self.stage = Stage.DETECT
        self.header: ProxyHeader | None = None
        self.trailing_data = b""  # what followed the header in the bytes fed
        self._buffer = bytearray()
        self._searched = 0  # V1: bytes already searched for the CRLF

    def _move(self, stage: Stage) -> None:
        if stage not in MOVES[self.stage]:
            raise RuntimeError(f"PROXY parser: no move from {self.stage.name} to {stage.name}")
        self.stage = stage

    def room(self) -> int:
        """The most bytes that can still belong to the header (a reader may take more and
        leave the rest, as :attr:`trailing_data`, for what follows)."""
        have = len(self._buffer)
        if self.stage is Stage.V1:
            return V1_MAX_LENGTH - have
        if self.stage is Stage.V2 and have >= V2_FIXED_LENGTH:
            return V2_FIXED_LENGTH + int.from_bytes(self._buffer[14:16], "big") - have
        if self.stage in (Stage.DONE, Stage.FAILED):
            return 0
        return max(V1_MAX_LENGTH, V2_FIXED_LENGTH + self.max_v2_length) - have

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Take ``data``; the header once complete (then and after), else None.

        Raises a :class:`ProxyProtocolError` when the bytes cannot be a header; the parser
        is then spent (feeding it again raises the same kind of error).
        """
        if self.stage is Stage.DONE:
            self.trailing_data += data
            return self.header
        if self.stage is Stage.FAILED:
            raise ProxyProtocolError("the parser already failed")
        self._buffer += data
        try:
            return self._advance()
        except ProxyProtocolError:
            self._move(Stage.FAILED)
            raise

    def _advance(self) -> ProxyHeader | None:
        if self.stage is Stage.DETECT:
            self._detect()
        if self.stage is Stage.V1:
            return self._v1()
        if self.stage is Stage.V2:
            return self._v2()
        return None

    def _detect(self) -> None:
        """Move to V1 or V2 once the bytes match a signature; fail once they match none."""
        data = bytes(self._buffer[: len(V2_SIGNATURE)])
        if data == V1_PREFIX[: len(data)] or data[: len(V1_PREFIX)] == V1_PREFIX:
            if len(data) >= len(V1_PREFIX):
                self._move(Stage.V1)
            return
        if data == V2_SIGNATURE[: len(data)]:
            if len(data) == len(V2_SIGNATURE):
                self._move(Stage.V2)
            return
        raise SignatureError(f"starts with {data[:16]!r}")

    def _v1(self) -> ProxyHeader | None:
        """§2.1: the line up to CRLF; a CR elsewhere, or no CRLF in 107 bytes, fails."""
        buffer = self._buffer
        # The CRLF's CR is at index 105 at the latest (107 bytes with the LF).
        end = buffer.find(b"\r", self._searched, V1_MAX_LENGTH - 1)
        if end < 0:
            self._searched = len(buffer)
            if len(buffer) >= V1_MAX_LENGTH - 1:
                raise HeaderTooLongError(f"no CRLF in the first {V1_MAX_LENGTH} bytes")
            return None
        if end + 1 >= len(buffer):
            self._searched = end
            return None
        if buffer[end + 1] != 0x0A:  # "\n"
            raise SignatureError("CR not followed by LF in a v1 header")
        line = bytes(buffer[len(V1_PREFIX) : end])
        return self._finish(parse_v1_line(line, end + 2), end + 2)

    def _v2(self) -> ProxyHeader | None:
        buffer = self._buffer
        if len(buffer) < V2_FIXED_LENGTH:
            return None
        length = int.from_bytes(buffer[14:16], "big")
        check_v2_fixed(buffer[12], buffer[13], length)
        if length > self.max_v2_length:
            raise HeaderTooLongError(f"v2 length {length} > {self.max_v2_length}")
        total = V2_FIXED_LENGTH + length
        if len(buffer) < total:
            return None
        header = parse_v2(bytes(buffer[12:16]), bytes(buffer[V2_FIXED_LENGTH:total]))
        return self._finish(header, total)

    def _finish(self, header: ProxyHeader, length: int) -> ProxyHeader:
        self._move(Stage.DONE)
        self.trailing_data = bytes(self._buffer[length:])
        self._buffer = bytearray()
        self.header = header
        return header


def parse_v1_line(line: bytes, length: int) -> ProxyHeader:
    """§2.1: the words after ``PROXY `` (without the CRLF) -> the header."""
    if line.startswith(b"UNKNOWN"):
        # §2.1: "the receiver must ignore anything presented before the CRLF"
        if line[7:8] not in (b"", b" "):
            raise FamilyError(f"unknown v1 protocol {line.split(b' ', 1)[0]!r}")
        return ProxyHeader(1, False, Family.UNSPEC, Transport.UNSPEC, None, None, length)
    words = line.split(b" ")
    family = _V1_FAMILIES.get(words[0])
    if family is None:
        raise FamilyError(f"unknown v1 protocol {words[0]!r}")
    if len(words) != 5:
        raise SignatureError(f"v1 header has {len(words)} words, not 5")
    source = _v1_ip(words[1], family), _v1_port(words[3])
    destination = _v1_ip(words[2], family), _v1_port(words[4])
    return ProxyHeader(1, False, family, Transport.STREAM, source, destination, length)


def _v1_ip(word: bytes, family: Family) -> str:
    """An address in its family's text form (§2.1); no zone index, no leading zeros."""
    try:
        text = word.decode("ascii")
        ip = ipaddress.IPv4Address(text) if family is Family.INET else ipaddress.IPv6Address(text)
    except (UnicodeDecodeError, ValueError):
        raise AddressError(f"{word!r} is not an {family.name} address") from None
    if "%" in text:
        raise AddressError(f"{word!r} has a zone index")
    return str(ip)


def _v1_port(word: bytes) -> int:
    """§2.1: a decimal port, 0..65535 (no sign, no leading zero: one spelling per port)."""
    if not word or len(word) > 5 or not _PORT_DIGITS.issuperset(word):
        raise PortError(f"{word!r} is not a port")
    if len(word) > 1 and word[:1] == b"0":
        raise PortError(f"{word!r} has a leading zero")
    port = int(word)
    if port > 65535:
        raise PortError(f"{word!r} is above 65535")
    return port


def check_v2_fixed(ver_cmd: int, fam_proto: int, length: int) -> None:
    """§2.2: version 2, command LOCAL (0) or PROXY (1), a known family and transport, and
    a length that holds the family's addresses."""
    if ver_cmd >> 4 != 0x2 or ver_cmd & 0x0F > 0x1:
        raise VersionError(f"version/command byte 0x{ver_cmd:02x}")
    try:
        family = Family(fam_proto >> 4)
        Transport(fam_proto & 0x0F)
    except ValueError:
        raise FamilyError(f"family/transport byte 0x{fam_proto:02x}") from None
    if length < _V2_ADDRESS_SIZES[family] and ver_cmd & 0x0F:
        raise AddressError(f"length {length} is short of the {family.name} addresses")


def parse_v2(fixed: bytes, body: bytes) -> ProxyHeader:
    """§2.2: ``fixed`` is ver_cmd, fam_proto and the length; ``body`` the bytes after."""
    local = fixed[0] & 0x0F == 0x0
    family = Family(fixed[1] >> 4)
    transport = Transport(fixed[1] & 0x0F)
    length = V2_FIXED_LENGTH + len(body)
    if local:
        # §2.2: LOCAL -- "the receiver must accept this connection as valid and must use
        # the real connection endpoints and discard the protocol block including the
        # family"; its TLVs are skipped unread.
        return ProxyHeader(2, True, family, transport, None, None, length)
    size = _V2_ADDRESS_SIZES[family]
    source, destination = _v2_addresses(family, body[:size])
    return ProxyHeader(2, False, family, transport, source, destination, length, tlvs(body[size:]))


def _v2_addresses(family: Family, block: bytes) -> tuple[Address | None, Address | None]:
    if family is Family.UNSPEC:
        return None, None  # §2.2: UNSPEC -- the receiver uses the real endpoints
    if family is Family.UNIX:
        return _unix_path(block[:_UNIX_PATH_SIZE]), _unix_path(block[_UNIX_PATH_SIZE:])
    size = _IP_SIZES[family]
    make = ipaddress.IPv4Address if family is Family.INET else ipaddress.IPv6Address
    ports = block[2 * size :]
    source = str(make(block[:size])), int.from_bytes(ports[:2], "big")
    destination = str(make(block[size : 2 * size])), int.from_bytes(ports[2:4], "big")
    return source, destination


def _unix_path(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """§2.2.1: type (1 byte), length (2 bytes), value; each must fit in what is left."""
    found: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if at + 3 > len(data):
            raise HeaderTooLongError("a TLV is cut short")
        size = int.from_bytes(data[at + 1 : at + 3], "big")
        end = at + 3 + size
        if end > len(data):
            raise HeaderTooLongError(f"a TLV of {size} bytes overruns the header")
        found.append((data[at], data[at + 3 : end]))
        at = end
    return tuple(found)
