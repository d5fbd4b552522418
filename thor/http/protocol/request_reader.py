"""RequestParser: bytes from a client -> RequestHead, Body, End, Invalid (server side).

A request head is parsed as one block (see ``head.py``): the request line is checked with
one regex plus a look at the target's form (RFC 9112 §3.2), the field section with another,
then the few fields that matter for framing are read (``framing.py``).
"""

from __future__ import annotations

from thor.http import error
from thor.http.headers import RawHeaderListType
from thor.http.protocol import abnf
from thor.http.protocol.abnf import HASH
from thor.http.protocol.framing import (
    Specials,
    collect,
    keep_alive,
    request_framing,
    upgrade_offered,
)
from thor.http.protocol.head import Buffer, HeadScanner, strip_values
from thor.http.protocol.messages import (
    FRAMING_CHUNKED,
    FRAMING_LENGTH,
    FRAMING_NONE,
    FRAMING_TUNNEL,
    Event,
    new_request_head,
)
from thor.http.protocol.reader import BaseParser

__all__ = ["RequestParser"]

RequestLine = tuple[bytes, bytes, bytes]


def _target_ok(method: bytes, target: bytes) -> bool:
    """Whether the request target has a form allowed for the method (RFC 9112 §3.2)."""
    if method == b"CONNECT":
        return abnf.authority_form_re.fullmatch(target) is not None  # §3.2.3
    if target[0] == 0x2F:  # "/": origin-form, §3.2.1
        return HASH not in target
    if target == b"*":
        return method == b"OPTIONS"  # asterisk-form, §3.2.4
    return abnf.absolute_form_re.fullmatch(target) is not None  # absolute-form, §3.2.2


def parse_request_line(line: bytes) -> RequestLine | None:
    """(method, target, version) of a valid HTTP/1.0 or 1.1 request line, else None."""
    fast = abnf.request_line_fast_re.fullmatch(line)
    if fast is not None and fast.group(1) != b"CONNECT":
        return fast.group(1, 2, 3)  # type: ignore[return-value]
    match = abnf.request_line_re.fullmatch(line)
    if match is None:
        return None
    method, target, major, minor = match.groups()
    if major != b"1" or minor not in b"01" or not _target_ok(method, target):
        return None
    return method, target, line[-3:]


def request_line_error(line: bytes) -> error.HttpError:
    """Why ``line`` is not a valid request line."""
    match = abnf.request_line_re.fullmatch(line)
    if match is None:
        if abnf.request_line_re.fullmatch(line + b" HTTP/1.1") is not None:
            return error.RequestLineError("HTTP/0.9 requests are not supported")
        return error.RequestLineError(repr(line[:80]))
    method, target, major, minor = match.groups()
    if major != b"1" or minor not in b"01":
        # RFC 9110 §15.6.6: a well-formed version we do not support.
        return error.HttpVersionError(f"HTTP/{major.decode()}.{minor.decode()}")
    return error.UrlError(f"invalid target {target[:80]!r} for {method.decode()}")


class RequestParser(BaseParser):
    """Sans-IO HTTP/1.1 request parser; see docs/http-protocol.md."""

    def __init__(
        self,
        *,
        max_request_line: int = 8190,
        max_field_section: int = 32768,
        max_fields: int = 100,
        max_body_size: int | None = None,
        max_chunk_line: int = 1024,
    ) -> None:
        super().__init__(
            max_field_section=max_field_section, max_fields=max_fields, max_body_size=max_body_size
        )
        self._max_chunk_line = max_chunk_line
        self._head: HeadScanner[RequestLine] = HeadScanner(
            parse_request_line, request_line_error, max_request_line, max_field_section, max_fields
        )
        self._valid_host = b"\x00"  # the last Host value found valid (never a valid one)

    def _read_head(self, buf: Buffer, pos: int, events: list[Event]) -> int:
        # RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) received
        # before the request line. We ignore any number (they are consumed, not buffered).
        while buf.startswith(b"\r\n", pos):
            pos += 2
        if pos == len(buf):
            return pos
        if isinstance(buf, bytes):
            # Only when no bytes were left over: a head split over reads is scanned line by
            # line instead, so trickled input is not matched again on every read (O(n)).
            end = self._read_common_head(buf, pos, events)
            if end >= 0:
                return end
        end = self._head.scan(buf, pos)
        if end < 0:
            return pos
        block = buf[pos:end] if isinstance(buf, bytes) else bytes(buf[pos:end])
        line, headers = self._head.parse(block)
        self._head.reset()
        assert line is not None
        method, target, version = line
        self._emit_head(events, method, target, version, headers, collect(headers))
        return end

    def _read_common_head(self, buf: bytes, pos: int, events: list[Event]) -> int:
        """Fast path: a whole common head (origin-form, HTTP/1.x, within the limits) at pos.

        Returns its end, or -1 (nothing consumed) for the general path to decide. Equivalent
        to it: ``request_head_fast_re`` is ``request_line_fast_re`` + CRLF + ``fields_re`` +
        CRLF, the three things ``HeadScanner.parse`` checks on a complete block; the limits are
        checked here as there; CONNECT (which needs an authority-form target) is left to it.
        """
        match = abnf.request_head_fast_re.match(buf, pos)
        if match is None:
            return -1
        method, target, version = match.groups()
        fstart = match.end(3) + 2
        end = match.end()
        fend = end - 2
        head = self._head
        if (
            fstart - 2 - pos > head.line_limit
            or fend - fstart > head.max_section
            or method == b"CONNECT"
        ):
            return -1
        pairs = abnf.field_pairs_re.findall(buf, fstart, fend)
        if len(pairs) > head.max_fields:
            raise error.TooManyFieldsError(f"more than {head.max_fields} fields")
        headers = strip_values(pairs, buf, fstart, fend)
        self._head.reset()  # a no-op unless an earlier head left its state
        self._emit_head(events, method, target, version, headers, collect(headers))
        return end

    def _emit_head(
        self,
        events: list[Event],
        method: bytes,
        target: bytes,
        version: bytes,
        headers: RawHeaderListType,
        specials: Specials,
    ) -> None:
        """Check Host, decide framing and persistence, and emit the RequestHead."""
        hosts = specials.get(b"host")
        if hosts is None:
            if version == b"1.1":
                raise error.HostRequiredError()  # RFC 9112 §3.2
        elif len(hosts) > 1:
            raise error.InvalidHostError("more than one Host field")  # RFC 9110 §7.2
        elif hosts[0] != self._valid_host:
            # One-entry memo: a keep-alive client sends the same Host again and again.
            if abnf.host_re.fullmatch(hosts[0]) is None:
                raise error.InvalidHostError(repr(hosts[0][:80]))
            self._valid_host = hosts[0]
        if hosts is not None and len(specials) == 1 and method != b"CONNECT":
            # Only Host among the framing fields (most GETs): request_framing gives NONE and
            # keep_alive the version's default, and there is no Expect. Same result, no calls.
            persist = version == b"1.1"
            events.append(
                new_request_head(
                    method, target, version, headers, FRAMING_NONE, None, persist, False
                )
            )
            self._start_body(events, FRAMING_NONE, None, persist)
            return
        framing, length = request_framing(version, specials, self._max_body_size)
        if method == b"CONNECT":
            framing, length = FRAMING_TUNNEL, None  # RFC 9110 §9.3.6
        persist = keep_alive(version, specials)
        # Held after its end until the response says whether the protocol switches.
        self._hold = framing is not FRAMING_TUNNEL and upgrade_offered(version, specials, headers)
        expect = (
            b"expect" in specials
            and version == b"1.1"
            and (framing is FRAMING_CHUNKED or (framing is FRAMING_LENGTH and bool(length)))
            and any(v.lower() == b"100-continue" for v in specials[b"expect"])
        )
        events.append(
            new_request_head(method, target, version, headers, framing, length, persist, expect)
        )
        self._start_body(events, framing, length, persist)
