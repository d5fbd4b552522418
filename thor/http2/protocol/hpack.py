"""HPACK (RFC 7541): field blocks to field lists and back, with the dynamic table.

Theory of operation.  A ``Decoder`` and an ``Encoder`` each own one dynamic table (§2.3.2):
a FIFO of recent fields, newest first, whose size is the sum of ``len(name) + len(value) + 32``
(§4.1) and never exceeds its maximum; adding evicts from the oldest end (§4.4), and a field
bigger than the maximum empties the table (§4.4).  Indices 1-61 are the static table, 62 and
up the dynamic one (§2.3.3).

Decoding is whole-block: the caller has already joined HEADERS and CONTINUATION.  A bound on
the decoded list (SETTINGS_MAX_HEADER_LIST_SIZE, counted as in RFC 9113 §6.5.2) stops an
HPACK bomb: past the bound, fields are still decoded so that the table stays in step with
the peer's (RFC 9113 §4.3) but are dropped, and ``HeaderListTooLarge`` is raised at the end.
Memory stays bounded by the table size plus the limit, CPU by the block's length.

Encoding policy (§7.1.3): ``authorization`` and ``proxy-authorization`` are always sent as
never-indexed literals, and so are ``cookie`` / ``set-cookie`` values shorter than
``SENSITIVE_COOKIE_LENGTH`` (20) bytes, short enough to guess by probing the table; everything
else is indexed when it fits the table.  Strings are Huffman-coded when that is not longer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from thor.http2.protocol import huffman
from thor.http2.protocol.errors import HeaderListTooLarge, HpackError
from thor.http2.protocol.hpack_static import STATIC_BY_FIELD, STATIC_BY_NAME, STATIC_TABLE

__all__ = [
    "SENSITIVE_COOKIE_LENGTH",
    "Decoder",
    "Encoder",
    "decode_integer",
    "encode_integer",
]

Field = tuple[bytes, bytes]

ENTRY_OVERHEAD = 32  # RFC 7541 §4.1
STATIC_LENGTH = len(STATIC_TABLE)
SENSITIVE_COOKIE_LENGTH = 20
ALWAYS_SENSITIVE = frozenset({b"authorization", b"proxy-authorization"})
COOKIES = frozenset({b"cookie", b"set-cookie"})
MAX_INTEGER = 1 << 32  # larger than any size, index or length HTTP/2 can carry
# Static fields with a value, as their one-byte indexed representation (§6.1).
STATIC_INDEXED = {field: bytes((0x80 | index,)) for field, index in STATIC_BY_FIELD.items()}


def encode_integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """RFC 7541 §5.1: ``value`` on a ``prefix_bits`` prefix, OR-ed into ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_integer(data: bytes | memoryview, pos: int, prefix_bits: int) -> tuple[int, int]:
    """RFC 7541 §5.1: the integer at ``data[pos]`` and the position after it."""
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise HpackError("integer runs past the end of the block (RFC 7541 §5.1)")
        byte = data[pos]
        pos += 1
        value += (byte & 127) << shift
        if value > MAX_INTEGER:
            raise HpackError("integer overflow (RFC 7541 §5.1)")
        if byte < 128:
            return value, pos
        shift += 7


def _decode_string(data: bytes | memoryview, pos: int) -> tuple[bytes, int]:
    """RFC 7541 §5.2: a string literal, Huffman-coded or not."""
    if pos >= len(data):
        raise HpackError("a string literal missing at the end of the block (RFC 7541 §5.2)")
    coded = data[pos] & 128
    length, pos = decode_integer(data, pos, 7)
    end = pos + length
    if end > len(data):
        raise HpackError("string runs past the end of the block (RFC 7541 §5.2)")
    if coded:
        return huffman.decode(data[pos:end]), end
    return bytes(data[pos:end]), end


class _Table:
    """A dynamic table (RFC 7541 §2.3.2, §4): newest field at index 0."""

    __slots__ = ("entries", "max_size", "size")

    def __init__(self, max_size: int) -> None:
        self.entries: deque[Field] = deque()
        self.size = 0
        self.max_size = max_size

    def add(self, name: bytes, value: bytes) -> list[Field]:
        """Add a field, evicting as §4.4 says; returns what was evicted."""
        entry_size = len(name) + len(value) + ENTRY_OVERHEAD
        evicted = self._shrink_to(self.max_size - entry_size)
        if entry_size <= self.max_size:
            self.entries.appendleft((name, value))
            self.size += entry_size
        return evicted

    def resize(self, max_size: int) -> list[Field]:
        self.max_size = max_size
        return self._shrink_to(max_size)

    def _shrink_to(self, target: int) -> list[Field]:
        evicted = []
        entries = self.entries
        while entries and self.size > target:
            name, value = entries.pop()
            self.size -= len(name) + len(value) + ENTRY_OVERHEAD
            evicted.append((name, value))
        return evicted


class Decoder:
    """Field blocks in, field lists out (RFC 7541 §3, §6).

    ``max_allowed_table_size`` is the SETTINGS_HEADER_TABLE_SIZE this side announced: the
    peer's size updates may not exceed it (§4.2, §6.3).  ``max_header_list_size`` bounds what
    one block may decode to.
    """

    __slots__ = ("max_allowed_table_size", "max_header_list_size", "table")

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 65536) -> None:
        self.table = _Table(max_table_size)
        self.max_allowed_table_size = max_table_size
        self.max_header_list_size = max_header_list_size

    def decode(self, block: bytes | memoryview) -> list[Field]:  # noqa: C901 (one loop: speed)
        fields: list[Field] = []
        append = fields.append
        table = self.table
        entries = table.entries
        limit = self.max_header_list_size
        list_size = 0
        pos = 0
        end = len(block)
        first = True
        while pos < end:
            byte = block[pos]
            if byte & 128:  # §6.1 indexed field
                index = byte & 127
                if index == 127:
                    index, pos = decode_integer(block, pos, 7)
                else:
                    pos += 1
                if index == 0:
                    raise HpackError("index 0 (RFC 7541 §6.1)")
                if index <= STATIC_LENGTH:
                    field = STATIC_TABLE[index - 1]
                elif index - STATIC_LENGTH <= len(entries):
                    field = entries[index - STATIC_LENGTH - 1]
                else:
                    raise HpackError(f"index {index} past the table (RFC 7541 §2.3.3)")
            elif byte & 0xE0 == 0x20:  # §6.3 dynamic table size update
                if not first:
                    raise HpackError("size update after a field (RFC 7541 §4.2)")
                size, pos = decode_integer(block, pos, 5)
                if size > self.max_allowed_table_size:
                    raise HpackError(f"table size {size} over the setting (RFC 7541 §6.3)")
                table.resize(size)
                continue
            else:
                # §6.2.1 with incremental indexing (01xxxxxx, 6-bit prefix); §6.2.2 without
                # (0000xxxx) and §6.2.3 never indexed (0001xxxx), both 4-bit prefixes.
                indexing = byte & 0x40
                index, pos = decode_integer(block, pos, 6 if indexing else 4)
                if index == 0:
                    name, pos = _decode_string(block, pos)
                elif index <= STATIC_LENGTH:
                    name = STATIC_TABLE[index - 1][0]
                elif index - STATIC_LENGTH <= len(entries):
                    name = entries[index - STATIC_LENGTH - 1][0]
                else:
                    raise HpackError(f"name index {index} past the table (RFC 7541 §2.3.3)")
                value, pos = _decode_string(block, pos)
                field = (name, value)
                if indexing:
                    table.add(name, value)
            first = False
            list_size += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if list_size <= limit:
                append(field)
        if list_size > limit:
            raise HeaderListTooLarge(list_size)
        return fields


class Encoder:
    """Field lists in, field blocks out, indexing by the policy in the module docstring.

    ``set_max_table_size`` follows the peer's SETTINGS_HEADER_TABLE_SIZE (capped by
    ``max_table_size``); the change is signalled at the start of the next block (§4.2).
    """

    __slots__ = (
        "_by_field",
        "_by_name",
        "_inserted",
        "_pending_sizes",
        "huffman",
        "max_table_size",
        "table",
    )

    def __init__(self, max_table_size: int = 4096, huffman: bool = True) -> None:
        self.table = _Table(max_table_size)
        self.max_table_size = max_table_size
        self.huffman = huffman
        # Dynamic entries by field and by name, as insertion numbers: index = 62 + newest - n.
        self._by_field: dict[Field, int] = {}
        self._by_name: dict[bytes, int] = {}
        self._inserted = 0
        self._pending_sizes: list[int] = []

    def set_max_table_size(self, peer_setting: int) -> None:
        size = min(peer_setting, self.max_table_size)
        if size != self.table.max_size or self._pending_sizes:
            self._pending_sizes.append(size)
            self._forget(self.table.resize(size))

    def encode(self, fields: Iterable[Field]) -> bytes:
        out = bytearray()
        if self._pending_sizes:
            # §4.2: the smallest size since the last block, then the final one.
            smallest, final = min(self._pending_sizes), self._pending_sizes[-1]
            out += encode_integer(smallest, 5, 0x20)
            if final != smallest:
                out += encode_integer(final, 5, 0x20)
            self._pending_sizes.clear()
        for name, value in fields:
            self._encode_field(out, name, value)
        return bytes(out)

    def _index_of(self, inserted: int) -> int:
        return STATIC_LENGTH + 1 + self._inserted - inserted

    def _encode_field(self, out: bytearray, name: bytes, value: bytes) -> None:
        field = (name, value)
        static = STATIC_INDEXED.get(field)
        if static is not None:
            out += static
            return
        inserted = self._by_field.get(field)
        if inserted is not None:
            # §6.1 indexed field; a response head's repeated fields land here, and their
            # indices (62 + the dynamic table's few entries) fit the 7-bit prefix.
            index = STATIC_LENGTH + 1 + self._inserted - inserted
            if index < 127:
                out.append(0x80 | index)
            else:
                out += encode_integer(index, 7, 0x80)
            return
        name_index = STATIC_BY_NAME.get(name)
        if name_index is None and name in self._by_name:
            name_index = self._index_of(self._by_name[name])
        sensitive = name in ALWAYS_SENSITIVE or (
            name in COOKIES and len(value) < SENSITIVE_COOKIE_LENGTH
        )
        if sensitive:
            out += encode_integer(name_index or 0, 4, 0x10)
        elif len(name) + len(value) + ENTRY_OVERHEAD <= self.table.max_size:
            out += encode_integer(name_index or 0, 6, 0x40)
            self._insert(name, value)
        else:
            out += encode_integer(name_index or 0, 4, 0x00)
        if not name_index:
            self._encode_string(out, name)
        self._encode_string(out, value)

    def _encode_string(self, out: bytearray, data: bytes) -> None:
        if self.huffman and data and huffman.encoded_length(data) <= len(data):
            coded = huffman.encode(data)
            out += encode_integer(len(coded), 7, 0x80)
            out += coded
        else:
            out += encode_integer(len(data), 7, 0x00)
            out += data

    def _insert(self, name: bytes, value: bytes) -> None:
        self._inserted += 1
        self._forget(self.table.add(name, value))
        self._by_field[(name, value)] = self._inserted
        self._by_name[name] = self._inserted

    def _forget(self, evicted: list[Field]) -> None:
        """Drop lookups of evicted entries, unless a newer entry took them over."""
        oldest = self._inserted - len(self.table.entries) + 1
        for name, value in evicted:
            # The encoder never inserts a field twice: an evicted field is its only copy.
            self._by_field.pop((name, value), None)
            if self._by_name.get(name, oldest) < oldest:
                del self._by_name[name]
