"""Frame-level pieces (RFC 6455 §5.2): opcodes, masking, frame headers, close payloads.

The base framing::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               |Masking-key, if MASK set to 1  |
    +-------------------------------+-------------------------------+

Reading headers is done inline by the connection (connection.py), one frame at a time with
indexing and ``struct``; this module holds what both directions share, masking included
(§5.3; the standard library's code, or an optional C accelerator: ``use_accelerator``).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from importlib.machinery import ExtensionFileLoader, PathFinder

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "close_code_is_valid",
    "close_payload",
    "frame_header",
    "mask",
    "mask_range",
    "masking",
    "unmask",
    "use_accelerator",
]

# RFC 6455 §5.2 / §11.8: 0x3-0x7 are reserved data opcodes, 0xB-0xF reserved control ones.
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
KNOWN_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})

FIN = 0x80
RSV1 = 0x40  # "per-message compressed" under permessage-deflate (RFC 7692 §6)
RSV2_RSV3 = 0x30
MASK_BIT = 0x80

# §5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125

# Close codes (§7.4.1), with the ones IANA registered later (1012-1014).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005  # never sent: "no status code was actually present"
CLOSE_ABNORMAL = 1006  # never sent: the connection closed without a close frame
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_MANDATORY_EXTENSION = 1010
CLOSE_INTERNAL_ERROR = 1011

# §7.4.1 / §7.4.2: codes below 3000 are the protocol's. 1004 is reserved, 1005 and 1006 must
# not be sent, 1015 (TLS failure) neither, 1016-2999 are unassigned: a close frame carrying
# any of those (or <1000, or >=5000) is a protocol error.
_VALID_BELOW_3000 = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

_HEADER_SHORT = struct.Struct("!BB")
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
LENGTH_16 = struct.Struct("!H")
LENGTH_64 = struct.Struct("!Q")


def close_code_is_valid(code: int) -> bool:
    """May a close frame carry ``code``? (RFC 6455 §7.4; 3000-4999 are for libraries/apps.)"""
    return code in _VALID_BELOW_3000 or 3000 <= code <= 4999


# Masking (RFC 6455 §5.3): octet i of the payload is XORed with octet i % 4 of the key, the
# same both ways. Two implementations: the standard library's (below), always there, and an
# optional C one, websockets' ``speedups.apply_mask`` (the extra ``thor[speedups]``), which
# XORs 16 bytes a step (SSE2 or NEON); see ``use_accelerator``. ``mask``, ``unmask`` and
# ``mask_range`` are bound to the chosen one, so callers look them up here (``frames.mask``).

Buffer = bytes | bytearray | memoryview
_ApplyMask = Callable[[Buffer, bytes], bytes]
_MaskRange = Callable[[Buffer, int, int, bytes], bytes]

# Above this size, masking by translation tables beats big integers (measured at 64 KiB under
# callgrind: 1.28 M instructions against 2.58 M; int.from_bytes and to_bytes cost ~12 and ~15
# instructions a byte, the XOR ~2 more).
_TRANSLATE_FROM = 2048
_XOR_TABLES: list[bytes | None] = [None] * 256  # _XOR_TABLES[k][b] == b ^ k, made on demand


def _xor_table(k: int) -> bytes:
    table = _XOR_TABLES[k]
    if table is None:
        table = _XOR_TABLES[k] = bytes(b ^ k for b in range(256))
    return table


def _stdlib_mask(data: Buffer, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (§5.3); masking and unmasking alike.

    Small payloads: one XOR of two big integers (CPython does it in C, word by word). Large
    ones: see ``_stdlib_unmask``.
    """
    n = len(data)
    if not n:
        return b""
    if n >= _TRANSLATE_FROM:
        return bytes(_stdlib_unmask(data, 0, n, key))
    keys = key * ((n + 3) >> 2)
    if len(keys) != n:
        keys = keys[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


def _stdlib_mask_range(buf: Buffer, start: int, stop: int, key: bytes) -> bytes:
    return bytes(_stdlib_unmask(buf, start, stop, key))


def _stdlib_unmask(buf: Buffer, start: int, stop: int, key: bytes) -> bytes | bytearray:
    """``mask(buf[start:stop], key)``: ``bytes`` when small, a new ``bytearray`` from 2 KiB.

    Large payloads are copied once into a bytearray, then each of its four byte lanes
    (``out[i::4]``) goes through ``bytearray.translate`` with the XOR table of its key byte and
    back, all in C. The lanes are taken from the copy, not from ``buf``, because a bytearray's
    slice is a bytearray, which the strided store takes as it is (a ``bytes`` lane would be
    converted first: another copy each). No final copy to ``bytes`` either: text is decoded
    from the bytearray, and only a binary message's caller converts it. This is most of the
    CPU a server spends on a large message: ~19 instructions a byte, 70 us for 64 KiB here,
    where the lanes of ``bytes`` (slice from ``buf``, translate, convert, store, copy out)
    took 24 instructions and 112 us (docs/websocket.md, "Speed").
    """
    n = stop - start
    if n < _TRANSLATE_FROM:
        return _stdlib_mask(buf[start:stop], key)
    out = bytearray(memoryview(buf)[start:stop])
    out[0::4] = out[0::4].translate(_xor_table(key[0]))
    out[1::4] = out[1::4].translate(_xor_table(key[1]))
    out[2::4] = out[2::4].translate(_xor_table(key[2]))
    out[3::4] = out[3::4].translate(_xor_table(key[3]))
    return out


# From this size the C path reads the payload through a memoryview of ``buf`` (no copy); a
# smaller slice is copied, which costs less than making the view: a memoryview and its slice
# cost ~2 k instructions (callgrind), a copy ~0.1 a byte; timeit puts the crossover at 16 KiB.
_VIEW_FROM = 16384


def _accelerated(apply_mask: _ApplyMask) -> tuple[_ApplyMask, _MaskRange]:
    """``mask`` and ``unmask`` (also ``mask_range``) on top of the C ``apply_mask``.

    ``apply_mask`` takes bytes, bytearray or a memoryview and returns new ``bytes``: the one
    pass over the payload is also its one copy out of the read buffer, and what it returns is
    handed on as it is (a binary message's data, or decoded to text).
    """

    def unmask(buf: Buffer, start: int, stop: int, key: bytes) -> bytes:
        if stop - start < _VIEW_FROM:
            return apply_mask(buf[start:stop], key)
        return apply_mask(memoryview(buf)[start:stop], key)

    return apply_mask, unmask


def _load_apply_mask() -> _ApplyMask | None:
    """websockets' C ``apply_mask``, or None when it cannot be loaded (not installed, a build
    without its C extension, another Python's build) or does not mask as §5.3 says.

    Only the extension module is loaded, not the ``websockets`` package: its ``__init__``
    imports ``importlib.metadata``, which imports ``socket`` and ``selectors`` (through
    ``email.utils``), and this sans-IO core loads no IO module (tests/test_sans_io.py). The
    extension itself imports nothing.
    """
    loaded = sys.modules.get("websockets.speedups")
    if loaded is None:
        try:
            package = PathFinder.find_spec("websockets")
            places = package.submodule_search_locations if package else None
            spec = PathFinder.find_spec("websockets.speedups", places) if places else None
            if spec is None or not isinstance(spec.loader, ExtensionFileLoader):
                return None
            loaded = spec.loader.create_module(spec)
            spec.loader.exec_module(loaded)
        except Exception:  # an optional accelerator never breaks the import: stdlib it is
            return None
        finally:
            # CPython registers a C module it creates in sys.modules; left there, it would
            # shadow a later real ``import websockets.speedups``, which then would not set the
            # package's ``speedups`` attribute. That import makes its own module instead.
            sys.modules.pop("websockets.speedups", None)
    apply_mask: _ApplyMask | None = getattr(loaded, "apply_mask", None)
    # What this module hands it: bytes, a bytearray, a memoryview of a slice; key byte i % 4.
    data, key, masked = b"..\x00\x10\x20\x30\x40", b"\x01\x02\x03\x04", b"\x01\x12\x23\x34\x41"
    try:
        if apply_mask is None or any(
            apply_mask(sample, key) != masked
            for sample in (data[2:], bytearray(data[2:]), memoryview(data)[2:])
        ):
            return None
    except Exception:  # e.g. a build that takes bytes only: TypeError
        return None
    return apply_mask


_apply_mask: _ApplyMask | None = None
_load_tried = False

ACCELERATOR = "websockets.speedups"
STDLIB = "stdlib"
# Which implementation ``mask``/``unmask`` use now: ACCELERATOR or STDLIB.
masking = STDLIB
mask: _ApplyMask = _stdlib_mask
unmask: Callable[[Buffer, int, int, bytes], bytes | bytearray] = _stdlib_unmask
mask_range: _MaskRange = _stdlib_mask_range


def use_accelerator(enabled: bool = True) -> str:
    """Mask with the C accelerator (``enabled``, if it can be loaded) or the standard library;
    returns the implementation now in use (``ACCELERATOR`` or ``STDLIB``).

    The accelerator is the default. The environment variable ``THOR_WS_PURE=1`` forces the
    standard library's: the package ``thor.websocket``, imported before this core, reads it
    and calls ``use_accelerator(False)`` (a sans-IO core reads no environment). Tests call it
    to cover both.
    """
    global _apply_mask, _load_tried, mask, unmask, mask_range, masking
    if enabled and not _load_tried:
        _load_tried = True
        _apply_mask = _load_apply_mask()
    if enabled and _apply_mask is not None:
        mask, unmask = _accelerated(_apply_mask)
        mask_range = unmask
        masking = ACCELERATOR
    else:
        mask, unmask, mask_range = _stdlib_mask, _stdlib_unmask, _stdlib_mask_range
        masking = STDLIB
    return masking


use_accelerator(True)


def frame_header(first: int, length: int, mask_key: bytes | None) -> bytes:
    """The header of a frame: ``first`` is FIN|RSV|opcode, then the minimal length (§5.2)."""
    bit = MASK_BIT if mask_key is not None else 0
    if length < 126:
        header = _HEADER_SHORT.pack(first, bit | length)
    elif length < 0x10000:
        header = _HEADER_16.pack(first, bit | 126, length)
    else:
        header = _HEADER_64.pack(first, bit | 127, length)
    return header + mask_key if mask_key is not None else header


def close_payload(code: int | None, reason: str) -> bytes:
    """The payload of a close frame (§5.5.1): empty, or a 2-byte code and a UTF-8 reason."""
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not close_code_is_valid(code):
        raise ValueError(f"{code} is not a close code an endpoint may send")
    data = code.to_bytes(2, "big") + reason.encode("utf-8")
    if len(data) > MAX_CONTROL_PAYLOAD:
        raise ValueError("a close reason is limited to 123 bytes of UTF-8")
    return data
