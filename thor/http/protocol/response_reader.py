"""ResponseParser: bytes from a server -> ResponseHead, Body, End, Invalid (client side).

The parser must know the method of each request to frame the response (RFC 9112 §6.3:
HEAD and CONNECT), so the client calls ``expect(method)`` once per request sent, in order.
Interim (1xx) responses are reported as heads with framing NONE and no End; the final
response for the same request follows. 101 Switching Protocols and a 2xx to CONNECT stop
the parser: the rest of the bytes are available from ``take_leftover()``.
"""

from __future__ import annotations

from collections import deque

from thor.http import error
from thor.http.protocol import abnf
from thor.http.protocol.framing import collect, keep_alive, response_framing
from thor.http.protocol.head import Buffer, HeadScanner
from thor.http.protocol.messages import FRAMING_CLOSE, Event, new_response_head
from thor.http.protocol.reader import BaseParser
from thor.memo import Memo

__all__ = ["ResponseParser"]

StatusLine = tuple[bytes, int, bytes]


# A client hears the same few status lines again and again ("HTTP/1.1 200 OK"): valid ones
# are remembered (bounded, so a server inventing phrases cannot grow it).
_STATUS_LINES_MAX = 256
_STATUS_LINES: Memo[bytes, StatusLine] = Memo(_STATUS_LINES_MAX)


def parse_status_line(line: bytes) -> StatusLine | None:
    """(version, status, phrase) of a valid HTTP/1.x status line (RFC 9112 §4), else None."""
    parsed = _STATUS_LINES.get(line)
    if parsed is None:
        parsed = _parse_status_line(line)
        if parsed is not None:
            _STATUS_LINES.put(line, parsed)
    return parsed


def _parse_status_line(line: bytes) -> StatusLine | None:
    match = abnf.status_line_re.fullmatch(line) or abnf.status_line_bare_re.fullmatch(line)
    if match is None:
        return None
    major, minor, code = match.group(1, 2, 3)
    status = int(code)
    if major != b"1" or minor not in b"01" or status < 100 or status > 599:
        return None
    phrase = match.group(4) if match.lastindex == 4 else b""
    return major + b"." + minor, status, phrase


def status_line_error(line: bytes) -> error.HttpError:
    """Why ``line`` is not a valid status line."""
    if abnf.version_re.match(line) and not line.startswith((b"HTTP/1.0", b"HTTP/1.1")):
        return error.HttpVersionError(repr(line[:8]))
    return error.StartLineError(repr(line[:80]))


class ResponseParser(BaseParser):
    """Sans-IO HTTP/1.1 response parser; see docs/http-protocol.md."""

    def __init__(
        self,
        *,
        max_status_line: int = 8190,
        max_field_section: int = 65536,
        max_fields: int = 200,
        max_body_size: int | None = None,
    ) -> None:
        super().__init__(
            max_field_section=max_field_section, max_fields=max_fields, max_body_size=max_body_size
        )
        self.methods: deque[bytes] = deque()  # of the requests sent, oldest first
        self._head: HeadScanner[StatusLine] = HeadScanner(
            parse_status_line,
            status_line_error,
            max_status_line,
            max_field_section,
            max_fields,
            error.UpstreamError,
        )

    def expect(self, method: bytes) -> None:
        """Register a request sent on this connection (call in sending order)."""
        self.methods.append(method)

    def _read_head(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        end = self._head.scan(buf, pos)
        if end < 0:
            return pos
        block = buf[pos:end] if isinstance(buf, bytes) else bytes(buf[pos:end])
        line, headers = self._head.parse(block)
        self._head.reset()
        assert line is not None
        version, status, phrase = line
        if not self.methods:
            raise error.UpstreamError("response without a request")
        method = self.methods[0]
        specials = collect(headers)
        framing, length = response_framing(method, status, specials, self._max_body_size)
        persist = keep_alive(version, specials) and framing is not FRAMING_CLOSE
        events.append(
            new_response_head(status, phrase, version, headers, framing, length, persist, end - pos)
        )
        if 100 <= status < 200 and status != 101:
            self._interim = True
            return end  # interim: the final response to the same request follows
        self._interim = False
        self.methods.popleft()
        self._start_body(events, framing, length, persist)
        return end
