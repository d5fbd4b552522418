"""HPACK's Huffman code (RFC 7541 §5.2, Appendix B): encode and a table-driven decode.

Theory of operation.  The code is a binary tree with 256 internal nodes.  Decoding walks it
four bits at a time: at import, every (internal node, nibble) pair is resolved once into the
node reached and the symbol completed on the way, if any (the shortest code is 5 bits, so a
nibble completes at most one).  ``decode`` is then two list lookups per input byte, with no
per-bit work.

§5.2's rules on the end of a string are properties of the node where decoding stops: it must
be the root, or a node reached from the root by at most 7 one-bits (padding is the most
significant bits of EOS).  Padding longer than 7 bits, padding with a zero bit, or EOS itself
inside the string is a decoding error.
"""

from __future__ import annotations

from thor.http2.protocol.errors import HpackError
from thor.http2.protocol.huffman_table import CODES, EOS

__all__ = ["decode", "encode", "encoded_length"]

_NO_SYMBOL = -1
_FAILED = -2  # EOS met inside the string (RFC 7541 §5.2)


def _build_tree() -> tuple[list[list[int]], list[bool]]:
    """Internal nodes as ``[child0, child1]``; a child >= 0 is a node, < 0 is ``-1 - symbol``."""
    nodes: list[list[int]] = [[0, 0]]
    made: list[list[bool]] = [[False, False]]
    for symbol, (code, length) in enumerate(CODES):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if not made[node][bit]:
                nodes.append([0, 0])
                made.append([False, False])
                nodes[node][bit] = len(nodes) - 1
                made[node][bit] = True
            node = nodes[node][bit]
        nodes[node][code & 1] = -1 - symbol
    # A node is an acceptable place to stop if it is reached by at most 7 one-bits.
    accepting = [False] * len(nodes)
    node = 0
    for _ in range(8):
        accepting[node] = True
        node = nodes[node][1]
    return nodes, accepting


def _build_nibble_table(nodes: list[list[int]]) -> tuple[list[int], list[int]]:
    next_node = [0] * (len(nodes) * 16)
    emitted = [_NO_SYMBOL] * (len(nodes) * 16)
    for start in range(len(nodes)):
        for nibble in range(16):
            node, symbol = start, _NO_SYMBOL
            for shift in (3, 2, 1, 0):
                child = nodes[node][(nibble >> shift) & 1]
                if child >= 0:
                    node = child
                    continue
                symbol = -1 - child
                node = 0
                if symbol == EOS:
                    symbol = _FAILED
                    break
            next_node[start * 16 + nibble] = node
            emitted[start * 16 + nibble] = symbol
    return next_node, emitted


_nodes, _ACCEPTING = _build_tree()
_NEXT, _EMIT = _build_nibble_table(_nodes)
del _nodes

_BITS = [format(code, f"0{length}b") for code, length in CODES[:256]]
_LENGTHS = [length for _, length in CODES[:256]]


def decode(data: bytes | memoryview) -> bytes:
    """Decode a Huffman-coded string, or raise ``HpackError`` (RFC 7541 §5.2)."""
    out = bytearray()
    append = out.append
    next_node, emit = _NEXT, _EMIT
    node = 0
    for byte in data:
        index = (node << 4) | (byte >> 4)
        symbol = emit[index]
        if symbol >= 0:
            append(symbol)
        elif symbol == _FAILED:
            raise HpackError("EOS inside a Huffman-coded string (RFC 7541 §5.2)")
        index = (next_node[index] << 4) | (byte & 15)
        symbol = emit[index]
        if symbol >= 0:
            append(symbol)
        elif symbol == _FAILED:
            raise HpackError("EOS inside a Huffman-coded string (RFC 7541 §5.2)")
        node = next_node[index]
    if not _ACCEPTING[node]:
        raise HpackError("Huffman padding longer than 7 bits or not all ones (RFC 7541 §5.2)")
    return bytes(out)


def encoded_length(data: bytes) -> int:
    """The length in bytes of ``encode(data)``, without encoding."""
    lengths = _LENGTHS
    return (sum([lengths[byte] for byte in data]) + 7) >> 3


def encode(data: bytes) -> bytes:
    """Huffman-code ``data``, padded with the most significant bits of EOS (all ones)."""
    if not data:
        return b""
    bits = "".join([_BITS[byte] for byte in data])
    padding = -len(bits) & 7
    return int(bits + "1" * padding, 2).to_bytes((len(bits) + padding) >> 3, "big")
