"""The common part of the request and response parsers: buffering and body readers.

Theory of operation. ``feed`` appends nothing when it can help it: if no bytes are left
over from the previous call it works on the caller's ``bytes`` directly, so a whole request
in one read is parsed without copying the buffer, and a Content-Length body that arrives in
its own read is returned as that very object. Left-over bytes (a partial head, say) go into a
``bytearray`` that later reads are appended to.

Parsing is a loop over *readers*: small methods chosen by state (h11 style), each called as
``reader(buf, pos, events) -> pos``. A reader consumes what it can, appends events, and may
install the next reader; a reader that neither moves ``pos`` nor changes the reader is
waiting for more bytes. An ``HttpError`` raised anywhere becomes the final ``Invalid`` event.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from thor.http import error
from thor.http.headers import RawHeaderListType
from thor.http.protocol import abnf
from thor.http.protocol.head import Buffer, HeadScanner
from thor.http.protocol.messages import (
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_TUNNEL,
    Event,
    Framing,
    Invalid,
    new_body,
    new_end,
)
from thor.http.protocol.state import (
    PARSER_BODY,
    PARSER_DONE,
    PARSER_HEAD,
    PARSER_HELD,
    PARSER_IDLE,
    PARSER_TUNNEL,
)

__all__ = ["FORBIDDEN_TRAILERS", "BaseParser"]

Reader = Callable[[Buffer, int, list[Event]], int]

# RFC 9110 §6.5.1: a sender MUST NOT generate trailer fields that are needed for framing,
# routing, request modifiers, authentication, response control or payload processing. We drop
# these instead of rejecting the message, and never apply them (Appendix B21).
FORBIDDEN_TRAILERS = frozenset(
    {
        b"transfer-encoding",
        b"content-length",
        b"host",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-type",
        b"content-encoding",
        b"content-range",
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"set-cookie",
        b"expect",
        b"max-forwards",
        b"cache-control",
        b"expires",
        b"date",
        b"location",
        b"retry-after",
        b"vary",
        b"www-authenticate",
        b"proxy-authenticate",
        b"age",
        b"pragma",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
    }
)

# More than 16 significant hex digits is more than 2**64 - 1 bytes (Appendix B15).
MAX_CHUNK_DIGITS = 16


class BaseParser:
    """Buffering, the feed loop and the body readers shared by both parsers."""

    def __init__(
        self, *, max_field_section: int, max_fields: int, max_body_size: int | None
    ) -> None:
        self.state = PARSER_IDLE
        self._max_body_size = max_body_size
        self._max_chunk_line = 1024
        self._buf = bytearray()
        self._leftover = bytearray()
        self._reader: Reader = self._read_head
        self._keep_alive = True  # of the message being read
        self._hold = False  # the message being read asks to upgrade: hold what follows it
        self._held_eof = False  # the peer closed while HELD
        self._interim = False  # a 1xx response was read; the final one has not started
        self._remaining = 0  # bytes left in the Content-Length body or the current chunk
        self._body_total = 0  # chunked content received so far, for max_body_size
        self._limits = (max_field_section, max_fields)
        self._trailers: HeadScanner[None] | None = None  # created on the first last-chunk

    # --- feeding --------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes (possibly none)."""
        state = self.state
        if (
            state is PARSER_DONE or state is PARSER_TUNNEL or state is PARSER_HELD
        ):  # _stopped(), inline: every read
            if state is not PARSER_DONE:
                self._leftover += data
            return []  # never parse past the end (CVE-2024-49768, Appendix B45/B53)
        buf: Buffer
        if self._buf:
            self._buf += data  # a bytearray: amortised O(1)
            buf = self._buf
        else:
            buf = data
        events: list[Event] = []
        pos = 0
        end = len(buf)
        try:
            # Every reader needs at least one byte to make progress. After DONE or TUNNEL the
            # reader is _halt, which never moves.
            while pos < end:
                reader = self._reader
                new = reader(buf, pos, events)
                if new == pos and self._reader is reader:
                    break  # waiting for more bytes
                pos = new
        except error.HttpError as err:
            self._die(events, err)
            return events
        self._keep(buf, pos)
        return events

    def _keep(self, buf: Buffer, pos: int) -> None:
        """Keep the unparsed bytes for the next feed (or for the tunnel)."""
        state = self.state
        stopped = (
            state is PARSER_DONE or state is PARSER_TUNNEL or state is PARSER_HELD
        )  # _stopped(), inline
        if stopped:
            if state is not PARSER_DONE:
                self._leftover += buf[pos:]
            self._buf = bytearray()
        elif pos == len(buf):
            if buf is self._buf:  # else self._buf is empty already (feed chose data)
                self._buf = bytearray()
        elif buf is self._buf:
            del self._buf[:pos]
        else:
            self._buf = bytearray(memoryview(buf)[pos:])
        # Not stopped, and not in a body: the head reader is installed (state and reader
        # change together, see _start_body and _finish); cheaper than comparing bound methods.
        if not stopped and state is not PARSER_BODY:
            # HEAD: part of a head is buffered, or a final response must follow an interim one.
            self.state = PARSER_HEAD if self._buf or self._interim else PARSER_IDLE

    def feed_eof(self) -> list[Event]:
        """The peer closed its side: end a close-delimited body, or report a truncated message."""
        if self._stopped():
            if self.state is PARSER_HELD:
                self._held_eof = True  # for resume()
            return []
        events: list[Event] = []
        if self._reader == self._read_close:
            self._finish(events, [])
        elif self.state is PARSER_IDLE:
            pass
        else:
            self._die(events, error.IncompleteMessageError("connection closed mid-message"))
        self.state = PARSER_DONE
        self._buf = bytearray()
        return events

    def _stopped(self) -> bool:
        state = self.state
        return state is PARSER_DONE or state is PARSER_TUNNEL or state is PARSER_HELD

    def take_leftover(self) -> bytes:
        """Bytes received after a TUNNEL head or an Upgrade request (HELD): they belong to
        the new protocol; clears them."""
        out = bytes(self._leftover)
        self._leftover.clear()
        return out

    def resume(self) -> list[Event]:
        """After an Upgrade request that was not switched (HELD): read on as HTTP/1.1.

        Returns the events of the bytes held meanwhile (a pipelined request, say).
        """
        if self.state is not PARSER_HELD:
            return []
        if self._keep_alive:
            self.state = PARSER_IDLE
            self._reader = self._read_head
        else:
            self.state = PARSER_DONE
        held = self.take_leftover()
        events = self.feed(held) if held else []
        if self._held_eof:
            events += self.feed_eof()
        return events

    def close(self) -> None:
        """The connection is gone: read nothing more (what HELD or TUNNEL kept stays for
        ``take_leftover``).  The reader in place is a bound method of the parser, a
        reference cycle that only the garbage collector would free; ``_halt`` is not."""
        self.state = PARSER_DONE
        self._reader = _halt
        self._buf = bytearray()

    def _die(self, events: list[Event], err: error.HttpError) -> None:
        # Without its traceback: the frames it holds refer to ``events``, which hold the
        # error, a cycle only the garbage collector frees (its place in the parser says
        # nothing the message does not).
        events.append(Invalid(err.with_traceback(None)))
        self.state = PARSER_DONE
        self._reader = _halt
        self._buf = bytearray()

    # --- transitions ----------------------------------------------------------------------

    def _read_head(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        raise NotImplementedError  # pragma: no cover

    def _start_body(
        self, events: list[Event], framing: Framing, length: int | None, keep_alive: bool
    ) -> None:
        """Install the reader for the body that follows a head."""
        self._keep_alive = keep_alive
        self.state = PARSER_BODY
        if framing is FRAMING_LENGTH and length:
            self._remaining = length
            self._reader = self._read_length
        elif framing is FRAMING_CHUNKED:
            self._body_total = 0
            self._reader = self._read_chunk_size
        elif framing is FRAMING_CLOSE:
            self._keep_alive = False
            self._reader = self._read_close
        elif framing is FRAMING_TUNNEL:
            self.state = PARSER_TUNNEL
            self._reader = _halt
        else:  # NONE, or a zero Content-Length
            self._finish(events, [])

    def _finish(self, events: list[Event], trailers: RawHeaderListType) -> None:
        events.append(new_end(trailers))
        if self._hold:
            # RFC 9110 §7.8: what follows an Upgrade request is HTTP only if the server does
            # not switch; keep it unparsed until the response tells (resume / take_leftover).
            self._hold = False
            self.state = PARSER_HELD
            self._reader = _halt
        elif self._keep_alive:
            self.state = PARSER_IDLE
            self._reader = self._read_head
        else:
            self.state = PARSER_DONE
            self._reader = _halt

    # --- body readers ---------------------------------------------------------------------

    def _read_length(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        """Content-Length body (RFC 9112 §6.2)."""
        take = min(len(buf) - pos, self._remaining)  # the feed loop ensures pos < len(buf)
        events.append(new_body(_slice(buf, pos, pos + take)))
        self._remaining -= take
        if self._remaining == 0:
            self._finish(events, [])
        return pos + take

    def _read_close(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        """Close-delimited body (RFC 9112 §6.3 step 8): everything until EOF."""
        events.append(new_body(_slice(buf, pos, len(buf))))
        return len(buf)

    def _read_chunk_size(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        """chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1)."""
        simple = _SIMPLE_CHUNK_LINE.match(buf, pos)
        if simple is not None:
            # The usual chunk line (no extension, few digits): with its data and CRLF, or the
            # last chunk with no trailers, in this one call; else on to the general readers.
            size = int(simple.group(1), 16)
            start = simple.end()
            self._body_total += size
            if self._max_body_size is not None and self._body_total > self._max_body_size:
                raise error.ContentTooLargeError(f"chunked body larger than {self._max_body_size}")
            if size:
                stop = start + size
                if buf[stop : stop + 2] == b"\r\n":
                    events.append(new_body(_slice(buf, start, stop)))
                    return stop + 2
                self._remaining = size
                self._reader = self._read_chunk_data
                return start
            if buf[start : start + 2] == b"\r\n":
                self._finish(events, [])
                return start + 2
        limit = self._max_chunk_line
        # Look for LF in the first limit+2 bytes only: the answer depends on the bytes, not on
        # how they were split, and a line with no LF is rejected at once (Appendix B16).
        nl = buf.find(b"\n", pos, pos + limit + 2)
        if nl < 0:
            if len(buf) - pos >= limit + 2:
                raise error.ChunkError(f"chunk line longer than {limit} bytes")
            return pos
        if nl == pos or buf[nl - 1] != 0x0D:
            raise error.ChunkError("chunk line not ended by CRLF")
        line = bytes(buf[pos : nl - 1])
        match = abnf.chunk_line_re.fullmatch(line)
        if match is None:
            raise error.ChunkError(f"invalid chunk line {line[:40]!r}")
        digits = match.group(1)
        if len(digits.lstrip(b"0")) > MAX_CHUNK_DIGITS:
            raise error.ContentTooLargeError("chunk size overflows")
        size = int(digits, 16)
        self._body_total += size
        if self._max_body_size is not None and self._body_total > self._max_body_size:
            raise error.ContentTooLargeError(f"chunked body larger than {self._max_body_size}")
        if size:
            self._remaining = size
            self._reader = self._read_chunk_data
        else:
            if self._trailers is None:
                self._trailers = HeadScanner(None, None, 0, *self._limits)
            self._trailers.reset()
            self._reader = self._read_trailers
        return nl + 1

    def _read_chunk_data(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        take = min(len(buf) - pos, self._remaining)
        events.append(new_body(_slice(buf, pos, pos + take)))
        self._remaining -= take
        if self._remaining == 0:
            self._reader = self._read_chunk_end
        return pos + take

    def _read_chunk_end(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        """The CRLF after chunk data (RFC 9112 §7.1; h11 CVE-2025-43859, Appendix B17)."""
        avail = len(buf) - pos
        if buf[pos] != 0x0D or (avail > 1 and buf[pos + 1] != 0x0A):
            raise error.ChunkTerminatorError()
        if avail == 1:
            return pos
        self._reader = self._read_chunk_size
        return pos + 2

    def _read_trailers(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        """trailer-section CRLF (RFC 9112 §7.1.2), validated like a header section."""
        if buf.startswith(b"\r\n", pos):
            self._finish(events, [])
            return pos + 2
        if len(buf) - pos < 2:
            return pos
        scanner = self._trailers
        assert scanner is not None
        end = scanner.scan(buf, pos)
        if end < 0:
            return pos
        _, fields = scanner.parse(_slice(buf, pos, end))
        trailers = [(n, v) for n, v in fields if n.lower() not in FORBIDDEN_TRAILERS]
        self._finish(events, trailers)
        return end


# A chunk line as most senders write it: hex digits (few enough to need no overflow check,
# see MAX_CHUNK_DIGITS) and CRLF; anything else (extensions, leading zeros) takes the
# general path and its errors.
_SIMPLE_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,%d})\r\n" % MAX_CHUNK_DIGITS)


def _slice(buf: Buffer, start: int, stop: int) -> bytes:
    """buf[start:stop] as bytes; the very object when that is all of a bytes buffer."""
    if isinstance(buf, bytes):
        return buf[start:stop]
    return bytes(buf[start:stop])


def _halt(buf: Buffer, pos: int, events: list[Event]) -> int:
    """The reader after DONE or TUNNEL: consumes nothing.  A function, not a method: the
    parser keeps its reader, and a finished parser must not refer to itself."""
    return pos
