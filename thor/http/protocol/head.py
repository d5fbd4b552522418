"""Finding and validating a block of lines: a message head or a trailer section.

Theory of operation. A block is a run of CRLF-terminated lines ended by an empty line
(RFC 9112 §2.1). ``HeadScanner.scan`` is called with the buffer each time bytes arrive; it
looks for ``CRLF CRLF`` from where it stopped last time (so trickled input is scanned once:
O(n)), and returns the end of the block when there is one.

Until the block is complete, every line that *is* complete is validated at once
(``_check_lines``), so a bad line is rejected without waiting for more input — a client that
sends bare LF line endings gets its 400 instead of a hang (Appendix B33). Limits are checked
against the partial line too.

When the block is complete, ``parse`` validates it in one go: a compiled regex for the start
line and one for the whole field section. Only if that fast path fails does it rerun the line
checks (which raise the precise error). Both paths accept exactly the same blocks, and the
error raised depends only on the bytes, never on how they were split: lines are checked in
order, each line first against the size limits, then for bare LF, bare CR, and syntax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from thor.http import error
from thor.http.headers import RawHeaderListType
from thor.http.protocol import abnf
from thor.http.protocol.abnf import CR

__all__ = ["HeadScanner", "field_error", "strip_values"]

T = TypeVar("T")
Buffer = bytes | bytearray


def strip_values(
    pairs: list[tuple[bytes, bytes]], section: Buffer, start: int, end: int
) -> RawHeaderListType:
    """``field_pairs_re``'s (name, value) pairs found in ``section[start:end]``, the values
    without their trailing OWS (RFC 9112 §5).

    Most sections have no blank before a line's CRLF: two C-level searches tell, and the
    pairs are returned as they are, without a Python step per field.
    """
    if section.find(b" \r", start, end) < 0 and section.find(b"\t\r", start, end) < 0:
        return pairs
    return [(n, v.rstrip(b" \t")) for n, v in pairs]


def field_error(line: bytes, first: bool) -> error.HttpError | None:
    """The error in one field line (no CR or LF in it), or None if valid (RFC 9112 §5)."""
    if line[:1] in (b" ", b"\t"):
        # RFC 9112 §2.2: whitespace after the start line; §5.2: obs-fold. Both rejected.
        if first:
            return error.TopLineSpaceError()
        return error.ObsoleteFoldError()
    colon = line.find(b":")
    if colon < 0:
        return error.HeaderNoColonError()
    name = line[:colon]
    if not name:
        return error.HeaderNameError("empty field name")
    if name[-1:] in (b" ", b"\t"):
        # RFC 9112 §5.1: no whitespace is allowed between the field name and colon.
        return error.HeaderSpaceError()
    if not abnf.token_re.fullmatch(name):
        return error.HeaderNameError(repr(name))
    if abnf.bad_value_re.search(line, colon + 1):
        return error.HeaderValueError(repr(name))
    return None


class HeadScanner(Generic[T]):
    """Scanner for one kind of block; ``reset()`` before each block.

    ``parse_start`` turns a start line into a value (None if invalid) and ``start_error``
    explains why it was invalid; both None for a trailer section (no start line).
    """

    __slots__ = (
        "_checked",
        "_count",
        "_find_from",
        "_line_error",
        "_section",
        "line_limit",
        "max_fields",
        "max_section",
        "parse_start",
        "start_error",
    )

    def __init__(
        self,
        parse_start: Callable[[bytes], T | None] | None,
        start_error: Callable[[bytes], error.HttpError] | None,
        line_limit: int,
        max_section: int,
        max_fields: int,
        line_error: type[error.HttpError] = error.RequestLineTooLongError,
    ) -> None:
        self.parse_start = parse_start
        self._line_error = line_error
        self.start_error = start_error
        self.line_limit = line_limit
        self.max_section = max_section
        self.max_fields = max_fields
        self.reset()

    def reset(self) -> None:
        self._find_from = 0  # offset (from the block start) to resume the CRLFCRLF search
        self._checked = 0  # offset of the first line not validated yet
        self._count = 0  # lines validated so far (including the start line)
        self._section = 0  # bytes of field lines validated so far

    def scan(self, buf: Buffer, start: int) -> int:
        """End of the block (offset just after its CRLFCRLF) in ``buf``, or -1 if incomplete.

        Raises an HttpError as soon as a complete line, or the size so far, is invalid.
        """
        end = buf.find(b"\r\n\r\n", start + self._find_from)
        if end >= 0:
            return end + 4
        self._find_from = max(0, len(buf) - start - 3)
        self._check_lines(buf, start, len(buf), complete=False)
        return -1

    def parse(self, block: bytes) -> tuple[T | None, RawHeaderListType]:
        """Parse a complete block (ending with CRLFCRLF) into (start line value, fields)."""
        parsed: T | None = None
        fstart = 0
        ok = True
        if self.parse_start is not None:
            fstart = block.find(b"\r\n")
            parsed = self.parse_start(block[:fstart]) if fstart <= self.line_limit else None
            ok = parsed is not None
            fstart += 2
        fend = len(block) - 2
        if ok and fend > fstart:
            ok = fend - fstart <= self.max_section and (
                abnf.fields_re.fullmatch(block, fstart, fend) is not None
            )
        if not ok:
            self._check_lines(block, 0, len(block), complete=True)
            raise AssertionError("unreachable: fast and slow paths disagree")  # pragma: no cover
        if fend == fstart:
            return parsed, []
        pairs = abnf.field_pairs_re.findall(block, fstart, fend)
        if len(pairs) > self.max_fields:
            raise error.TooManyFieldsError(f"more than {self.max_fields} fields")
        return parsed, strip_values(pairs, block, fstart, fend)

    def _check_lines(self, buf: Buffer, start: int, stop: int, *, complete: bool) -> None:
        """Validate the complete lines in buf[start+checked:stop]; check limits on the rest."""
        pos = start + self._checked
        while True:
            nl = buf.find(b"\n", pos, stop)
            if nl < 0:
                break
            line = bytes(buf[pos:nl])
            if complete and line == b"\r" and (self._count or self.parse_start is None):
                # The end of a complete block: only reached if the fast path rejected a block
                # that every line check accepts, which parse() reports as a bug.
                return  # pragma: no cover
            self._check_line(line)
            pos = nl + 1
        self._checked = pos - start
        if stop - pos > 1 or (stop > pos and buf[pos] != 0x0D):  # a lone CR may end the block
            self._check_partial(stop - pos)

    def _check_line(self, line: bytes) -> None:
        """Check one line (with its CR, without its LF)."""
        first_field = self._count == (1 if self.parse_start else 0)
        size = len(line) + 1
        if self.parse_start is not None and self._count == 0:
            if size - 2 > self.line_limit:
                raise self._line_error(f"start line longer than {self.line_limit} bytes")
            self._count = 1
            content = _line_content(line)
            assert self.start_error is not None
            if self.parse_start(content) is None:
                raise self.start_error(content)
            return
        self._section += size
        if self._section > self.max_section:
            raise error.FieldSectionTooLargeError(f"more than {self.max_section} bytes")
        self._count += 1
        fields = self._count - (1 if self.parse_start else 0)
        if fields > self.max_fields:
            raise error.TooManyFieldsError(f"more than {self.max_fields} fields")
        err = field_error(_line_content(line), first_field)
        if err is not None:
            raise err

    def _check_partial(self, size: int) -> None:
        """Reject a partial line that can only become too long."""
        if self.parse_start is not None and self._count == 0:
            if size >= self.line_limit + 2:
                raise self._line_error(f"start line longer than {self.line_limit} bytes")
        elif self._section + size + 1 > self.max_section:
            raise error.FieldSectionTooLargeError(f"more than {self.max_section} bytes")


def _line_content(line: bytes) -> bytes:
    """A line without its CR; raises for a bare LF ending (RFC 9112 §2.2, deliberately strict)."""
    if line[-1:] != b"\r":
        raise error.HeaderLineEndingError("bare LF")
    content = line[:-1]
    if CR in content:
        raise error.BareCRError()
    return content
