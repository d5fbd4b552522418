"""Structure-aware inputs for the parser fuzzer: messages built from a grammar, then bent.

Random bytes rarely get past a request line, so each generator here builds a message the
way the grammar lays it out (RFC 9112 §3 request line, §4 status line, §5 fields, §7.1
chunked coding; RFC 9113 §4 frames, RFC 7541 §6 field representations; RFC 6455 §5.2 frames)
and picks, piece by piece, either a valid value or a mutated one (a bad character, a wrong
length, a duplicate, a bare LF...). A final pass may flip, insert or delete a few bytes.

Every choice goes through a ``Choices`` object: ``random.Random`` with a fixed seed in the
default run (reproducible counts), or an adapter over atheris's ``FuzzedDataProvider`` when
run under atheris (coverage-guided). Nothing here imports the code under test.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Choices(Protocol):
    """The few calls the generators make (``random.Random`` has them all)."""

    def randint(self, a: int, b: int) -> int: ...

    def choice(self, seq: Sequence[T]) -> T: ...

    def randbytes(self, n: int) -> bytes: ...


class Seeded:
    """``Choices`` from a seeded ``random.Random``, cheaper than its own ``choice`` and
    ``randint`` (one C call each instead of four Python ones): the generator is the
    fuzzer's main cost."""

    __slots__ = ("_random", "randbytes")

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self._random = rng.random
        self.randbytes = rng.randbytes

    def randint(self, a: int, b: int) -> int:
        return a + int(self._random() * (b - a + 1))

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self._random() * len(seq))]


def maybe(r: Choices, one_in: int) -> bool:
    return r.randint(1, one_in) == 1


def bend(r: Choices, odds: int) -> bool:
    """Whether to use a bent piece: one time in ``odds``; never when ``odds`` is 0 (a clean
    input, so that about half the inputs get through the grammar to the deep states)."""
    return odds > 0 and r.randint(1, odds) == 1


def odds(r: Choices) -> int:
    """How bent one input is: clean, lightly or heavily."""
    return r.choice([0, 0, 0, 40, 12, 4])


# --- HTTP/1.1 pieces ------------------------------------------------------------------------

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT",
           b"PATCH", b"X-CUSTOM", b"PRI"]  # fmt: skip
BAD_METHODS = [b"", b"get", b"G ET", b"GE\x00T", b"G\xffT", b"GET\t", b"(GET)", b"G" * 300]
TARGETS = [b"/", b"/a/b?c=d&e", b"/%41%2f", b"*", b"http://h.example:8080/p?q",
           b"https://[::1]/", b"example.com:443", b"h:80", b"/" + b"x" * 200]  # fmt: skip
BAD_TARGETS = [b"", b"/a b", b"/a\x00", b"/#frag", b"/\x7f", b"/\xc3\xa9", b"ex ample:1",
               b"http://", b"//", b"/%zz", b"http://h:99999999999/", b"h:", b"[::1:80"]  # fmt: skip
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0"]
BAD_VERSIONS = [b"HTTP/2.0", b"HTTP/1.10", b"http/1.1", b"HTTP/1", b"HTTP/9.9", b"",
                b"HTTP/1.1 ", b"HTTP /1.1", b"HTTP/0.9", b"HTTP/1.\xff"]  # fmt: skip
EOLS = [b"\r\n"] * 12 + [b"\n", b"\r", b"\r\r\n", b"\n\r"]
NAMES = [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Upgrade",
         b"Expect", b"TE", b"Trailer", b"Keep-Alive", b"Content-Type", b"X-A", b"Cookie",
         b"Proxy-Connection", b"Date", b"Set-Cookie"]  # fmt: skip
PLAIN_NAMES = [b"X-A", b"Cookie", b"Date", b"Set-Cookie", b"Content-Type", b"Keep-Alive"]
BAD_NAMES = [b"", b"X A", b"X\x00", b"X:", b"\xff", b"Host ", b" Host", b"X\tY", b'"q"']
VALUES = {
    b"host": [b"a", b"example.com:80", b"[::1]:8080", b"", b"a b", b"h\x00", b"a,b", b"@"],
    b"content-length": [b"0", b"3", b"10", b"00003", b" 3 ", b"3, 3", b"3,4", b"-1", b"+3",
                        b"0x3", b"99999999999999999999999", b"", b"1e3", b"\xd9\xa3"],
    b"transfer-encoding": [b"chunked", b"gzip, chunked", b"chunked, gzip", b"identity",
                           b"CHUNKED", b"chunked ,", b",chunked", b"x-y;q=1", b"chunked\x00"],
    b"connection": [b"close", b"keep-alive", b"upgrade", b"Upgrade, HTTP2-Settings", b"close, te",
                    b"", b",,,", b"x" * 50],
    b"upgrade": [b"websocket", b"h2c", b"HTTP/2.0", b"", b"a/b, c"],
    b"expect": [b"100-continue", b"100-Continue", b"200-ok", b""],
    b"te": [b"trailers", b"gzip;q=0.5", b"chunked"],
    b"trailer": [b"X-T", b"Content-Length", b"a, b"],
}  # fmt: skip
GENERIC_VALUES = [b"", b"v", b"a, b", b"\"quoted \\\" value\"", b"  padded  ", b"\x80\xff",
                  b"tab\there", b"x" * 400, b"nul\x00", b"cr\rin", b"del\x7f"]  # fmt: skip
GOOD_VALUES = [b"", b"v", b"a, b", b'"quoted \\" value"', b"\x80\xff", b"tab\there"]
FORBIDDEN_TRAILERS = [b"Content-Length", b"Host", b"Transfer-Encoding", b"Authorization"]
STATUSES = [b"100", b"101", b"102", b"103", b"200", b"204", b"206", b"301", b"304", b"404",
            b"500", b"599", b"199", b"299"]  # fmt: skip
FINAL_STATUSES = [b"200", b"201", b"206", b"301", b"404", b"500", b"599", b"299"]
BAD_STATUSES = [b"", b"20", b"2000", b"abc", b"-20", b"099", b"600", b"2 0", b"\xff\xff\xff"]
REASONS = [b"OK", b"", b"Not Found", b"r\xe9ason", b"with\ttab", b"x" * 100, b"ctl\x01"]


def token(r: Choices) -> bytes:
    alphabet = b"abcXYZ019-!#$%&'*+.^_`|~"
    return bytes(r.choice(alphabet) for _ in range(r.randint(1, 12)))


def pick(r: Choices, good: Sequence[bytes], bad: Sequence[bytes], odds: int) -> bytes:
    return r.choice(bad) if bend(r, odds) else r.choice(good)


def field(r: Choices, eol: bytes, odds: int) -> tuple[bytes, bytes]:
    """One field line (name, value, with optional whitespace and rare obs-fold or no colon)."""
    name = pick(r, NAMES if odds else PLAIN_NAMES, BAD_NAMES, odds)
    name = token(r) if maybe(r, 4) else name
    values = VALUES.get(name.lower().strip(), GENERIC_VALUES)
    value = r.choice(values) if not maybe(r, 6) else r.choice(GENERIC_VALUES)
    if not odds:
        value = r.choice(GOOD_VALUES)
    ows = r.choice([b"", b" ", b"  ", b"\t"])
    line = name + pick(r, [b":"], [b"", b" :", b"::"], odds) + ows + value + r.choice([b"", ows])
    if bend(r, odds * 4):
        line += eol + r.choice([b" ", b"\t"]) + b"folded"  # RFC 9112 §5.2 obs-fold
    return name, line + eol


def fields_block(r: Choices, eol: bytes, extra: Sequence[tuple[bytes, bytes]], odds: int) -> bytes:
    """Field lines in random order: ``extra`` (framing chosen by the caller) plus random ones."""
    lines = [name + b": " + value + eol for name, value in extra]
    lines += [field(r, eol, odds)[1] for _ in range(r.randint(0, 6))]
    if bend(r, odds) and lines:
        lines.append(r.choice(lines))  # a duplicate field
    shuffled = [lines.pop(r.randint(0, len(lines) - 1)) for _ in range(len(lines))]
    return b"".join(shuffled)


def chunk_size(r: Choices, size: int, odds: int) -> bytes:
    """The size line of a chunk (RFC 9112 §7.1): usually right, sometimes bent."""
    if bend(r, odds):
        return r.choice([b"", b"-1", b"0x3", b"g", b" 3", b"3 ", b"FFFFFFFFFFFFFFFFF", b"1" * 40,
                         b"%X" % (size + 1), b"%x" % max(0, size - 1), b"+3"])  # fmt: skip
    text = r.choice([b"%x", b"%X", b"%04x"]) % size
    if maybe(r, 4):
        good = [b";a", b";a=b", b';a="q\\"x"', b";a;b=c"]
        text += pick(r, good, [b"; a = b", b";", b";a=\x00", b";=b", b";a=" + b"x" * 1100], odds)
    return text


def chunked_body(r: Choices, eol: bytes, odds: int) -> bytes:
    out = bytearray()
    for _ in range(r.randint(0, 4)):
        data = r.randbytes(r.choice([1, 3, 10, 100, 1000]))
        size = len(data) if not bend(r, odds) else r.randint(0, 2000)
        out += chunk_size(r, size, odds) + eol + data + pick(r, [eol], [b"", b"xx"], odds)
    if bend(r, odds):
        return bytes(out)  # no last chunk: truncated
    out += pick(r, [b"0", b"00", b"0;ext=1"], [b"0 ", b"0x0"], odds) + eol
    for _ in range(r.randint(0, 3) if maybe(r, 3) else 0):
        name = pick(r, [b"X-T", b"Checksum"], FORBIDDEN_TRAILERS + BAD_NAMES, odds)
        value = r.choice(GENERIC_VALUES) if odds else r.choice(GOOD_VALUES)
        out += name + b": " + value + eol
    out += pick(r, [eol], [b"", b"x"], odds)
    return bytes(out)


def body_and_framing(r: Choices, eol: bytes, odds: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Framing fields and the body they announce (or a mismatch: short, long, both)."""
    kind = r.randint(0, 4)
    if kind == 0:
        return [], b""
    if kind in (1, 2):
        body = r.randbytes(r.choice([0, 1, 5, 100, 4000]))
        told = len(body) if not bend(r, odds) else r.randint(0, 5000)
        framing = [(b"Content-Length", b"%d" % told)]
        if bend(r, odds):
            framing.append((b"Transfer-Encoding", b"chunked"))  # RFC 9112 §6.3 step 3
        return framing, body
    te = pick(r, [b"chunked"], [b"gzip, chunked", b"chunked, gzip", b"identity"], odds)
    return [(b"Transfer-Encoding", te)], chunked_body(r, eol, odds)


def request(r: Choices, odds: int) -> bytes:
    """One request (RFC 9112 §3): request line, fields, body."""
    eol = pick(r, [b"\r\n"], EOLS, odds)
    method = pick(r, METHODS, BAD_METHODS, odds)
    line = method + pick(r, [b" "], [b"  ", b"\t", b""], odds)
    target = r.choice(TARGETS[:3]) if method != b"CONNECT" else b"h.example:443"
    line += pick(r, [target], BAD_TARGETS + TARGETS, odds) + b" "
    framing, body = body_and_framing(r, eol, odds)
    chunked = any(name == b"Transfer-Encoding" for name, _ in framing)
    line += pick(r, VERSIONS[:1] if chunked else VERSIONS, BAD_VERSIONS + VERSIONS, odds)
    host = [] if bend(r, odds) else [(b"Host", r.choice(VALUES[b"host"][:3]))]
    head = r.choice([b"", b"", b"", b"\r\n", b"\r\n\r\n"]) + line + eol
    return head + fields_block(r, eol, host + framing, odds) + eol + body


def response(r: Choices, odds: int) -> tuple[bytes, list[bytes]]:
    """Interim responses then a final one (RFC 9112 §4), and the methods they answer."""
    out = bytearray()
    method = r.choice([b"GET"] * 6 + [b"HEAD", b"POST", b"CONNECT"])
    for _ in range(r.randint(0, 2) if maybe(r, 4) else 0):
        out += b"HTTP/1.1 " + r.choice([b"100", b"103", b"102"]) + b" X\r\n\r\n"
    eol = pick(r, [b"\r\n"], EOLS, odds)
    status = pick(r, FINAL_STATUSES, BAD_STATUSES + STATUSES, odds)
    line = pick(r, VERSIONS, BAD_VERSIONS, odds) + pick(r, [b" "], [b"", b"  "], odds) + status
    line += pick(r, [b" OK", b" Not Found", b" ", b" r\xe9ason"], [b"", *REASONS], odds)
    framing, body = body_and_framing(r, eol, odds)
    if maybe(r, 5):
        framing.append((b"Connection", r.choice(VALUES[b"connection"][:4])))
    out += line + eol + fields_block(r, eol, framing, odds) + eol + body
    return bytes(out), [method]


def mutate(r: Choices, data: bytes, edits: int) -> bytes:
    """Flip, insert or delete a few bytes anywhere (the part no grammar predicts)."""
    buf = bytearray(data)
    for _ in range(edits):
        where = r.randint(0, len(buf))
        kind = r.randint(0, 2)
        if kind == 0:
            buf[where:where] = bytes([r.choice(b'\r\n \t:;,0\x00\xff9aF"')])
        elif buf and where < len(buf):
            if kind == 1:
                buf[where] = r.randint(0, 255)
            else:
                del buf[where]
    return bytes(buf)


def requests_input(r: Choices) -> bytes:
    """One to three pipelined requests, maybe mutated."""
    level = odds(r)
    data = b"".join(request(r, level) for _ in range(r.randint(1, 3)))
    return mutate(r, data, r.randint(1, 4)) if bend(r, level) else data


def responses_input(r: Choices) -> tuple[bytes, list[bytes]]:
    data, methods = bytearray(), []
    level = odds(r)
    for _ in range(r.randint(1, 3)):
        more, their_methods = response(r, level)
        data += more
        methods += their_methods
    out = mutate(r, bytes(data), r.randint(1, 4)) if bend(r, level) else bytes(data)
    return out, methods


# --- HTTP/2 frames (RFC 9113 §4.1, §6) and HPACK blocks (RFC 7541 §6) -----------------------


def hpack_int(value: int, prefix: int, first: int) -> bytes:
    """RFC 7541 §5.1 (written here, not imported, so a decoder bug cannot hide itself)."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes([first | value])
    out = bytearray([first | top])
    value -= top
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


HPACK_NAMES = [b":method", b":path", b":scheme", b":authority", b":status", b":protocol", b"te",
               b"content-length", b"connection", b"x-a", b"Upper", b"", b"cookie"]  # fmt: skip
HPACK_VALUES = [b"GET", b"POST", b"CONNECT", b"/", b"https", b"a", b"0", b"12", b"trailers",
                b"", b"a\x00b", b" sp", b"x" * 70000, b"\xff"]  # fmt: skip


def hpack_block(r: Choices, odds: int, request: bool) -> bytes:
    """A field block: a valid request's pseudo-fields first (RFC 9113 §8.3.1) when asked,
    then representations of every kind (§6), bent one time in ``odds``."""
    out = bytearray()
    if request:  # static indexes 2 (:method GET), 7 (:scheme https), 4 (:path /)
        out += b"\x82\x87\x84" + hpack_int(1, 4, 0) + hpack_string(r, b"a.example", 0)
    for _ in range(r.randint(0, 6)):
        kind = r.randint(0, 5) if odds else 2
        if kind == 0:  # §6.1 indexed (0 and huge indexes are errors)
            out += hpack_int(r.choice([1, 2, 4, 7, 61, 62, 63, 0, 10**6]), 7, 0x80)
        elif kind == 1:  # §6.3 dynamic table size update (only at the start of a block)
            out += hpack_int(r.choice([0, 100, 4096, 5000, 2**32]), 5, 0x20)
        else:  # §6.2 literal: with indexing, without, never; indexed or new name
            prefix, first = r.choice([(6, 0x40), (4, 0x00), (4, 0x10)])
            if bend(r, odds):
                out += hpack_int(r.randint(1, 70), prefix, first)
                name = b""
            else:
                name = pick(r, [b"x-a", b"accept", b"cookie", b"user-agent"], HPACK_NAMES, odds)
                out += bytes([first]) + hpack_string(r, name, odds)
            value = pick(r, [b"v", b"a b", b"", b"x" * 100], HPACK_VALUES, odds)
            out += hpack_string(r, value, odds)
    return bytes(out)


def hpack_string(r: Choices, data: bytes, odds: int) -> bytes:
    if bend(r, odds):  # Huffman flag over bytes that are not Huffman: padding/EOS errors
        return hpack_int(len(data), 7, 0x80) + data
    told = len(data) if not bend(r, odds) else r.randint(0, 300)
    return hpack_int(told, 7, 0) + data


def h2_frame(r: Choices, kind: int, flags: int, stream: int, payload: bytes, odds: int) -> bytes:
    length = len(payload) if not bend(r, odds * 4) else r.randint(0, 1 << 24)
    return (
        struct.pack(">I", length)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
    )


def h2_payload(r: Choices, kind: int, odds: int) -> bytes:
    if kind == 0:  # DATA (over 16384 only when bent: the default SETTINGS_MAX_FRAME_SIZE)
        return r.randbytes(pick(r, [0, 1, 100, 16384], [20000], odds))
    if kind in (1, 9):  # HEADERS, CONTINUATION
        block = hpack_block(r, odds, kind == 1 and not bend(r, odds))
        if kind == 1 and bend(r, odds):
            block = struct.pack(">IB", r.choice([0, 1, 3, 0x80000001]), 16) + block  # priority
        return block
    if kind == 2:  # PRIORITY
        return struct.pack(">IB", r.choice([0, 1, 3]), 16)[: pick(r, [5], [4, 0], odds)]
    if kind == 3:  # RST_STREAM
        return struct.pack(">I", r.randint(0, 14))
    if kind == 4:  # SETTINGS (§6.5.2: ids 1-6; bad values are errors)
        good = [r.choice(GOOD_SETTINGS) for _ in range(r.randint(0, 3))]
        bad = [(r.randint(0, 9), r.choice([2**24, 2**31, 2**32 - 1, 1]))]
        pairs = good + (bad if bend(r, odds) else [])
        return b"".join(struct.pack(">HI", i, v) for i, v in pairs)
    if kind == 5:  # PUSH_PROMISE: a client must not send it
        return struct.pack(">I", 2) + hpack_block(r, odds, True)
    if kind == 6:  # PING
        return r.randbytes(pick(r, [8], [0, 7], odds))
    if kind == 7:  # GOAWAY
        return struct.pack(">II", r.randint(0, 9), r.randint(0, 14)) + r.randbytes(2)
    if kind == 8:  # WINDOW_UPDATE
        return struct.pack(">I", pick(r, [1, 100, 65535], [0, 2**31 - 1, 2**31], odds))
    return r.randbytes(r.randint(0, 10))  # unknown types are ignored (§4.1)


GOOD_SETTINGS = [(1, 0), (1, 100), (2, 0), (3, 100), (4, 65535), (4, 0), (5, 16384),
                 (5, 2**24 - 1), (6, 1000)]  # fmt: skip
GOOD_H2 = [1] * 4 + [0] * 4 + [2, 3, 4, 6, 8, 10]  # CONTINUATION, PUSH_PROMISE and GOAWAY: bent


def h2_input(r: Choices) -> bytes:
    """After the preface and SETTINGS: frames on a few streams, in a plausible order or not."""
    level = odds(r)
    out = bytearray()
    stream = 1
    for i in range(r.randint(1, 10)):
        kind = pick(r, GOOD_H2, [9, 5, 7, 0xFF], level) if i else pick(r, [1], [0, 8], level)
        if kind == 1 and maybe(r, 2):
            stream += 2
        if kind == 1:
            flags = pick(r, [4, 5], [0, 1, 8, 0x20, 0x25, 0xFF], level)  # END_HEADERS
        elif kind == 0:
            flags = pick(r, [0, 1], [8, 9, 0xFF], level)  # END_STREAM, PADDED
        else:
            flags = pick(r, [0], [1, 0xFF], level)
        sid = pick(r, [stream], [0, stream + 2, stream - 2, 2, 0x7FFFFFFF], level)
        if kind in (4, 6, 7, 8) and not bend(r, level):
            sid = 0 if kind != 8 or maybe(r, 2) else stream  # connection-level frames
        payload = h2_payload(r, kind, level)
        if flags & 8 and kind in (0, 1, 5):  # PADDED (§6.1): a pad length, maybe too long
            pad = r.choice([0, 3, 255])
            payload = bytes([pad]) + payload + b"\x00" * (pad if not maybe(r, 3) else 0)
        out += h2_frame(r, kind, flags, max(0, sid), payload, level)
    return mutate(r, bytes(out), r.randint(1, 3)) if bend(r, level) else bytes(out)


# --- WebSocket frames (RFC 6455 §5.2) ----------------------------------------------------------

WS_CLOSE_CODES = [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1011, 1015, 2999, 3000,
                  4999, 5000, 0, 999]  # fmt: skip
WS_TEXTS = [b"", b"hello", "h\u00e9llo \u2603 \U0001f600".encode(), b"\xff\xfe", b"\xed\xa0\x80",
            b"\xc3", b"\xf4\x90\x80\x80", b"x" * 300]  # fmt: skip


def ws_payload(r: Choices, opcode: int, odds: int) -> bytes:
    if opcode == 8:
        if bend(r, odds):
            return r.choice([b"\x03", struct.pack(">H", r.choice(WS_CLOSE_CODES)) + b"\xff"])
        if maybe(r, 5):
            return b""
        code = pick(r, [1000, 1001, 1003, 1011, 3000, 4999], WS_CLOSE_CODES, odds)
        return struct.pack(">H", code) + r.choice(WS_TEXTS[:3])
    if opcode in (1, 0):
        return pick(r, WS_TEXTS[:3] + WS_TEXTS[-1:], WS_TEXTS, odds)
    return r.randbytes(r.choice([0, 5, 125, 126, 200, 70000] if opcode < 8 else [0, 5, 125]))


def ws_frame(r: Choices, masked: bool, odds: int, opcode: int, fin: int) -> bytes:
    """One frame (RFC 6455 §5.2): FIN, RSV, opcode, mask bit, 7/16/64-bit length, key."""
    payload = ws_payload(r, opcode, odds)
    rsv = pick(r, [0], [0x40, 0x20, 0x10], odds)
    n = len(payload) if not bend(r, odds * 4) else r.choice([0, 126, 2**16, 2**63])
    encoding = 0 if n < 126 else 2 if n < 1 << 16 else 8
    if bend(r, odds):
        encoding = r.choice([0, 2, 8])  # non-minimal length encodings
    first = bytes([fin | rsv | opcode])
    mask_bit = 0x80 if masked != bend(r, odds) else 0
    if encoding == 0 and n < 126:
        head = first + bytes([mask_bit | n])
    elif encoding == 2 and n < 1 << 16:
        head = first + bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = first + bytes([mask_bit | 127]) + struct.pack(">Q", n % 2**64)
    if not mask_bit:
        return head + payload
    key = r.randbytes(4)
    return head + key + xor(payload, key)


def xor(data: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 masking, one big-integer XOR (a byte loop is too slow at 64 KiB)."""
    n = len(data)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def ws_input(r: Choices, masked: bool) -> bytes:
    """Frames that make messages (fragmented or not, control frames between), or bent ones."""
    level = odds(r)
    out = bytearray()
    fragmenting = False
    for _ in range(r.randint(1, 6)):
        opcode = pick(r, [1, 2, 9, 10, 8], [0, 3, 7, 11, 15], level)
        if fragmenting and opcode < 8 and not bend(r, level):
            opcode = 0  # the next fragment (§5.4)
        fin = 0x80
        if opcode < 8 and maybe(r, 3):
            fin = 0  # start or continue a fragmented message
        elif opcode >= 8 and bend(r, level):
            fin = 0  # a fragmented control frame: an error
        if opcode < 8:
            fragmenting = not fin
        out += ws_frame(r, masked, level, opcode, fin)
    return mutate(r, bytes(out), r.randint(1, 3)) if bend(r, level) else bytes(out)


Generator = Callable[[Choices], object]
