"""Raw frames written independently of the core, and feeding helpers."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from thor.websocket.protocol import Connection, Event

KEY = b"\x37\xfa\x21\x3d"


def xor(data: bytes, key: bytes) -> bytes:
    """Masking the slow, obvious way (RFC 6455 §5.3), to check the fast one against."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def raw_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = KEY,
    length_bytes: int | None = None,
    length: int | None = None,
) -> bytes:
    """A frame with every bit under the test's control.

    ``length_bytes`` forces the length encoding (0, 2 or 8 extra bytes) and ``length`` the
    value written, so that non-minimal and impossible lengths can be sent.
    """
    n = len(payload) if length is None else length
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 0x10000 else 8
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    maskbit = 0x80 if key is not None else 0
    if length_bytes == 0:
        head = bytes([first, maskbit | n])
    elif length_bytes == 2:
        head = bytes([first, maskbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, maskbit | 127]) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + xor(payload, key)


def client_frame(opcode: int, payload: bytes = b"", **kw: object) -> bytes:
    return raw_frame(opcode, payload, **kw)  # type: ignore[arg-type]


def server_frame(opcode: int, payload: bytes = b"", **kw: object) -> bytes:
    return raw_frame(opcode, payload, key=None, **kw)  # type: ignore[arg-type]


def counter_random(n: int) -> bytes:
    """A deterministic 'random' source for client masking keys."""
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def splits(data: bytes) -> Iterator[list[bytes]]:
    """``data`` whole, one byte at a time, and split in two at every offset."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def feed(conn: Connection, pieces: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events.extend(conn.receive_data(piece))
    return events


def server(**kw: object) -> Connection:
    return Connection("server", **kw)  # type: ignore[arg-type]


def client(**kw: object) -> Connection:
    return Connection("client", random=counter_random, **kw)  # type: ignore[arg-type]
