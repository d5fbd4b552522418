"""permessage-deflate (RFC 7692): negotiation and the per-message codec on stdlib ``zlib``.

Negotiation (§7.1). A client offers ``permessage-deflate`` with parameters; a server accepts
one offer (answering with the parameters in force) or declines them all (answering without the
extension). The four parameters:

``server_no_context_takeover`` / ``client_no_context_takeover``
    that side resets its LZ77 window after every message; a server MUST echo the server one it
    was offered (§7.1.1.1) and MAY add either on its own.
``server_max_window_bits`` / ``client_max_window_bits`` (8-15, decimal, no leading zero)
    that side's LZ77 window is at most 2**bits bytes. A server answers an offered server value
    with the same or a smaller one (§7.1.2.1); it MAY send a client value only if the client
    offered the parameter, with or without a value (§7.1.2.2).

An offer with an unknown, repeated or malformed parameter is declined (§7.1: "MUST decline");
a response that breaks these rules fails the client's connection (§7.1, last paragraphs).

The codec (§7.2). A message is compressed as one DEFLATE stream cut with a sync flush, and the
final ``00 00 ff ff`` of the flush is removed (§7.2.1); the receiver appends it back before
inflating (§7.2.2). A side without context takeover flushes with ``Z_FULL_FLUSH`` instead,
which also resets the window, so one compressor lives for the whole connection.

zlib's 8-bit window quirk: ``deflateInit2`` refuses raw deflate with windowBits 8 and otherwise
silently turns 8 into 9 ("until 256-byte window bug fixed"). A 9-bit zlib compressor never emits
a distance beyond ``w_size - MIN_LOOKAHEAD`` = 512 - 262 = 250 bytes, which fits the 256-byte
window the peer allowed; so when 8 is negotiated we compress (and inflate) with 9.

Inflating is bounded: output is produced in steps of at most ``INFLATE_STEP`` bytes and never
more than the room the caller gives, so a compression bomb costs a close 1009, not memory.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

__all__ = [
    "Deflate",
    "DeflateConfig",
    "Deflater",
    "InflateTooBig",
    "Inflater",
    "accept_offer",
    "check_response",
    "offer",
]

NAME = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"  # the end of an empty stored block: what a sync flush ends with
INFLATE_STEP = 256 * 1024
_BITS = re.compile(r"(?:[89]|1[0-5])\Z")  # §7.1.2: 8-15, decimal, no leading zeroes

ExtensionParams = list[tuple[str, str | None]]


class InflateTooBig(Exception):
    """The inflated message would exceed the room it was given."""


@dataclass(frozen=True, slots=True)
class DeflateConfig:
    """What this endpoint asks for (client) or imposes (server); None means "no wish".

    Server: ``server_*`` limit its own compressor (answered even if not offered),
    ``client_no_context_takeover`` is demanded from every client, ``client_max_window_bits``
    is applied when the client offered the parameter. Client: the offer is exactly these.
    ``level`` is zlib's compression level (1 fast ... 9 small); it is not negotiated.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    level: int = 6

    def __post_init__(self) -> None:
        for bits in (self.server_max_window_bits, self.client_max_window_bits):
            if bits is not None and not 8 <= bits <= 15:
                raise ValueError(f"window bits must be 8-15, not {bits}")
        if not 0 <= self.level <= 9:
            raise ValueError(f"zlib level must be 0-9, not {self.level}")


@dataclass(frozen=True, slots=True)
class Deflate:
    """permessage-deflate as negotiated: the parameters both sides now follow."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15
    level: int = 6

    def response_value(self, server_bits_always: bool, client_bits_allowed: bool) -> bytes:
        """The Sec-WebSocket-Extensions value a server answers with (§7.1).

        ``server_bits_always``: the offer named server_max_window_bits, so the answer must
        too, even at 15 (§7.1.2.1); ``client_bits_allowed``: the offer named
        client_max_window_bits, without which the answer must not (§7.1.2.2).
        """
        parts = [NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if server_bits_always or self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if client_bits_allowed and self.client_max_window_bits != 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts).encode("ascii")

    def deflater(self, role_is_client: bool) -> Deflater:
        """The compressor for what this side sends."""
        if role_is_client:
            return Deflater(
                self.client_max_window_bits, self.client_no_context_takeover, self.level
            )
        return Deflater(self.server_max_window_bits, self.server_no_context_takeover, self.level)

    def inflater(self, role_is_client: bool) -> Inflater:
        """The decompressor for what the peer sends."""
        return Inflater(
            self.server_max_window_bits if role_is_client else self.client_max_window_bits
        )


class _Offer:
    """One parsed parameter list; ``valid`` is False if the parameters break §7.1."""

    __slots__ = (
        "client_bits",
        "client_bits_present",
        "client_nct",
        "server_bits",
        "server_nct",
        "valid",
    )

    def __init__(self, params: ExtensionParams, is_response: bool) -> None:
        self.server_nct = self.client_nct = self.client_bits_present = False
        self.server_bits: int | None = None
        self.client_bits: int | None = None
        self.valid = len({name for name, _ in params}) == len(params)  # §7.1: no repeats
        for name, value in params:
            if name in ("server_no_context_takeover", "client_no_context_takeover"):
                self.valid &= value is None
                if name[0] == "s":
                    self.server_nct = True
                else:
                    self.client_nct = True
            elif name == "server_max_window_bits":
                self.server_bits = _bits(value)
                self.valid &= self.server_bits is not None
            elif name == "client_max_window_bits":
                # In an offer the value is optional (§7.1.2.2); in a response it is not.
                self.client_bits_present = True
                self.client_bits = _bits(value)
                self.valid &= self.client_bits is not None or (value is None and not is_response)
            else:
                self.valid = False


def _bits(value: str | None) -> int | None:
    return int(value) if value is not None and _BITS.match(value) else None


def accept_offer(
    offers: list[tuple[str, ExtensionParams]], config: DeflateConfig
) -> tuple[Deflate, bytes] | None:
    """Server side: the first acceptable permessage-deflate offer, and the answer's value."""
    for name, params in offers:
        if name != NAME:
            continue
        parsed = _Offer(params, is_response=False)
        if not parsed.valid:
            continue  # §7.1: decline an offer with bad parameters, try the next one
        server_bits = parsed.server_bits or 15
        if config.server_max_window_bits is not None:
            server_bits = min(server_bits, config.server_max_window_bits)
        client_bits = 15
        if parsed.client_bits_present:
            client_bits = parsed.client_bits or 15
            if config.client_max_window_bits is not None:
                client_bits = min(client_bits, config.client_max_window_bits)
        deflate = Deflate(
            server_no_context_takeover=parsed.server_nct or config.server_no_context_takeover,
            client_no_context_takeover=parsed.client_nct or config.client_no_context_takeover,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
            level=config.level,
        )
        value = deflate.response_value(parsed.server_bits is not None, parsed.client_bits_present)
        return deflate, value
    return None


def offer(config: DeflateConfig) -> bytes:
    """Client side: the Sec-WebSocket-Extensions value offering permessage-deflate."""
    parts = [NAME]
    if config.server_no_context_takeover:
        parts.append("server_no_context_takeover")
    if config.client_no_context_takeover:
        parts.append("client_no_context_takeover")
    if config.server_max_window_bits is not None:
        parts.append(f"server_max_window_bits={config.server_max_window_bits}")
    if config.client_max_window_bits is not None:
        parts.append(f"client_max_window_bits={config.client_max_window_bits}")
    else:
        parts.append("client_max_window_bits")  # "we can limit our window if you ask"
    return "; ".join(parts).encode("ascii")


def check_response(params: ExtensionParams, config: DeflateConfig) -> Deflate | None:
    """Client side: the parameters in force, or None if the server's answer breaks §7.1."""
    parsed = _Offer(params, is_response=True)
    if not parsed.valid:
        return None
    if config.server_no_context_takeover and not parsed.server_nct:
        return None  # §7.1.1.1: accepting means echoing it
    asked = config.server_max_window_bits
    if asked is not None and (parsed.server_bits is None or parsed.server_bits > asked):
        return None  # §7.1.2.1: "the same or smaller value as the offer"
    mine = config.client_max_window_bits
    if parsed.client_bits is not None and mine is not None and parsed.client_bits > mine:
        return None  # §7.1.2.2: not above what we offered
    return Deflate(
        server_no_context_takeover=parsed.server_nct,
        client_no_context_takeover=parsed.client_nct or config.client_no_context_takeover,
        server_max_window_bits=parsed.server_bits or 15,
        client_max_window_bits=parsed.client_bits or mine or 15,
        level=config.level,
    )


class Deflater:
    """Compresses this side's messages (§7.2.1), one zlib stream for the connection."""

    __slots__ = ("_compressor", "_end_flush")

    def __init__(self, window_bits: int, no_context_takeover: bool, level: int) -> None:
        # See the module docstring for max(…, 9).
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -max(window_bits, 9))
        # Z_FULL_FLUSH resets the window as well: no context carried to the next message.
        self._end_flush = zlib.Z_FULL_FLUSH if no_context_takeover else zlib.Z_SYNC_FLUSH

    def compress(self, data: bytes, final: bool = True) -> bytes:
        """The compressed payload of one frame; ``final`` ends the message."""
        compressor = self._compressor
        if not final:
            return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        out = compressor.compress(data) + compressor.flush(self._end_flush)
        # A flush always ends with the empty stored block's 00 00 ff ff: §7.2.1 removes it.
        # What is left of an empty message is one 0x00 byte (§7.2.3.6).
        return out[:-4]


class Inflater:
    """Decompresses the peer's messages (§7.2.2) with a bounded output."""

    __slots__ = ("_decompressor", "_window_bits")

    def __init__(self, window_bits: int) -> None:
        self._window_bits = -max(window_bits, 9)
        self._decompressor = zlib.decompressobj(self._window_bits)

    def inflate(self, data: bytes | bytearray, end: bool, room: int) -> bytes:
        """Inflate one frame's payload, at most ``room`` bytes out; ``end`` ends the message.

        Raises ``InflateTooBig`` past ``room`` and ``zlib.error`` on corrupt data.
        """
        decompressor = self._decompressor
        if end:
            data += TAIL
        step = min(room + 1, INFLATE_STEP)
        out = decompressor.decompress(data, step)
        if len(out) > room:
            raise InflateTooBig
        if len(out) == step or decompressor.unconsumed_tail:
            out = self._inflate_more(out, room)
        if end and decompressor.eof:
            # The peer ended its stream with a BFINAL block; its next message starts a new one.
            self._decompressor = zlib.decompressobj(self._window_bits)
        return out

    def _inflate_more(self, first: bytes, room: int) -> bytes:
        """The slow path: more output than one step, taken a step at a time."""
        decompressor = self._decompressor
        pieces = [first]
        room -= len(first)
        while True:
            step = min(room + 1, INFLATE_STEP)
            out = decompressor.decompress(decompressor.unconsumed_tail, step)
            room -= len(out)
            if room < 0:
                raise InflateTooBig
            pieces.append(out)
            if len(out) < step and not decompressor.unconsumed_tail:
                return b"".join(pieces)
