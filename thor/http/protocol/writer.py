"""Serializers: ResponseWriter (server side) and RequestWriter (client side).

Each writer frames one message: ``start`` returns the head, ``body`` the framed chunk, and
``end`` whatever terminates the message. The framing decision follows RFC 9112 §6 (and,
for responses, Thor 0.17's rules): a Content-Length the application gave is honoured and
counted; otherwise HTTP/1.1 peers get chunked, HTTP/1.0 clients a close-delimited body.

Everything the application passes is validated (field names are tokens, values contain no
CR, LF, NUL or other controls, the reason phrase likewise): a violation raises
``OutputSyntaxError`` instead of letting a header be injected (Appendix B49). Calling the
methods out of order raises ``OutputStateError`` (transition table in ``state.py``).
"""

from __future__ import annotations

import re
from http import HTTPStatus

from thor.http import error
from thor.http.error import ErrorResponse
from thor.http.headers import (
    HOP_BY_HOP,
    PLAIN_CONNECTION_OPTIONS,
    RawHeaderListType,
    connection_tokens,
    split_list,
)
from thor.http.protocol import abnf
from thor.http.protocol.messages import (
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_NONE,
    FRAMING_TUNNEL,
    Framing,
)
from thor.http.protocol.state import WRITER_BY_ACTION, WRITER_IDLE, writer_transition
from thor.memo import Memo

__all__ = ["RequestWriter", "ResponseWriter"]

# The writer's transitions read from the table once (inlined where they run per message).
_START_SOURCE, _START_TARGET = WRITER_BY_ACTION["start"]
_BODY_SOURCE, _ = WRITER_BY_ACTION["body"]
_END_SOURCE, _END_TARGET = WRITER_BY_ACTION["end"]

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_UPGRADE_FIELDS = frozenset({b"connection", b"upgrade"})


def _check_fields(headers: RawHeaderListType) -> tuple[bytes, ...]:
    """Lower-cased names; raises OutputSyntaxError unless every name is a token and no
    value contains a control character (CR, LF, NUL...): no field can be injected (B49).

    Names and values are each joined with HTAB, which no name contains and values may
    contain anyway, so validation is a regex call for the names and a ``translate`` for the
    values whatever the number of fields. A set of names already found valid is remembered
    (``_VALID_NAMES``): applications send the same few sets again and again.
    """
    if not headers:
        return ()
    try:
        # Like unpacking each pair, this raises ValueError unless every pair has 2 items.
        all_names, all_values = zip(*headers, strict=True)
        names = b"\t".join(all_names)
        values = b"\t".join(all_values)
    except TypeError:
        raise error.OutputSyntaxError("field names and values must be bytes") from None
    lnames = _VALID_NAMES.get(names)
    if lnames is None:
        if _NAMES_RE.fullmatch(names) is None:
            raise error.OutputSyntaxError(f"invalid field name in {names!r}")
        lnames = tuple(names.lower().split(b"\t"))
        _VALID_NAMES.put(names, lnames)  # bounded: an app inventing names cannot grow it
    if len(values.translate(None, _BAD_VALUE_OCTETS)) != len(values):
        raise error.OutputSyntaxError("control character in a field value")
    return lnames


_BAD_VALUE_OCTETS = abnf.BAD_VALUE_OCTETS
_NAMES_RE = re.compile(abnf.TOKEN + rb"(?:\t" + abnf.TOKEN + rb")*")
# HTAB-joined field names that _NAMES_RE accepted -> their lower-cased names.
_VALID_NAMES_MAX = 512
_VALID_NAMES: Memo[bytes, tuple[bytes, ...]] = Memo(_VALID_NAMES_MAX)

# Names start() must look at: hop-by-hop fields to drop, and Content-Length, which it writes
# itself (one isdisjoint call tells whether the common case applies: none of them).
_FRAMING_OR_HOP = HOP_BY_HOP | {b"content-length"}

_NO_LENGTHS: list[bytes] = []  # never mutated

# A response's fields (as a tuple) -> (the fields as written, the Content-Length they give),
# for valid fields only; bounded in entries and in the size of each.
_FIELDS: Memo[tuple[tuple[bytes, bytes], ...], tuple[bytes, int | None]] = Memo(256)
_FIELDS_GET = _FIELDS.get
_FIELDS_MAX_BYTES = 2048

# RFC 9112 §4 status lines of the registered statuses with their usual phrases, serialized
# once; any other (status, phrase) is checked and formatted per call.
_STATUS_LINES: dict[int, tuple[bytes, bytes]] = {
    s.value: (s.phrase.encode("latin-1"), b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()))
    for s in HTTPStatus
}


def _status_line(status: int, phrase: bytes) -> bytes:
    cached = _STATUS_LINES.get(status)
    if cached is not None and cached[0] == phrase:
        return cached[1]
    _check_phrase(phrase)
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


def _fields(headers: RawHeaderListType) -> bytes:
    return b"".join([b"%s: %s\r\n" % pair for pair in headers])


def _content_length(values: list[bytes]) -> int:
    # bytes.isdigit: non-empty and ASCII digits only, as content_length_re = [0-9]+.
    if len(values) != 1 or not values[0].isdigit():
        raise error.OutputSyntaxError(f"invalid Content-Length {values!r}")
    return int(values[0])


class _BodyWriter:
    """Body framing shared by both writers.

    The initial values are class attributes, shadowed by instance attributes once set: a
    writer is created per message, and these are immutable values, so sharing them is safe
    and saves the stores.
    """

    state = WRITER_IDLE
    framing = FRAMING_NONE
    keep_alive = True
    complete = False
    _length = 0  # Content-Length promised
    _sent = 0  # body bytes written so far
    _discard = False  # a body the message cannot have (HEAD, 304): drop it

    def body(self, chunk: bytes) -> bytes:
        """Frame ``chunk`` of the body."""
        # writer_transition(state, "body"), inline: this runs for every chunk.
        if self.state is not _BODY_SOURCE:
            writer_transition(self.state, "body")  # raises
        if not chunk or self._discard:
            return b""
        framing = self.framing
        if framing is FRAMING_CHUNKED:
            return b"%x\r\n%s\r\n" % (len(chunk), chunk)
        if framing is FRAMING_LENGTH:
            self._sent += len(chunk)
            if self._sent > self._length:
                raise error.OutputSyntaxError(f"body longer than Content-Length {self._length}")
            return chunk
        if framing is FRAMING_NONE:
            raise error.OutputStateError("this message has no body")
        return chunk  # CLOSE, TUNNEL

    @property
    def body_whole(self) -> bool:
        """Whether the peer holds a whole message once what was framed so far arrives: the head
        is written and its framing needs nothing more (Content-Length all sent, or no body).
        A chunked or close-delimited body is whole only when :meth:`end` has framed its end."""
        if self.state is _END_TARGET:
            return self.complete
        if self.state is not _BODY_SOURCE:
            return False
        framing = self.framing
        return (framing is FRAMING_LENGTH and self._sent == self._length) or (
            framing is FRAMING_NONE or self._discard
        )

    def body_sent_elsewhere(self, count: int) -> int | None:
        """Count ``count`` body bytes the caller sends itself (``sendfile``), unframed.

        Returns how many of them to send: ``count``, or 0 when the message has no body
        (HEAD, 304).  Only a Content-Length body can be sent so: None (nothing counted)
        for any other framing.
        """
        if self._discard:
            return 0
        if self.framing is not FRAMING_LENGTH:
            return None
        if self.state is not _BODY_SOURCE:  # writer_transition(state, "body"), as in body()
            writer_transition(self.state, "body")  # raises
        self._sent += count
        if self._sent > self._length:
            raise error.OutputSyntaxError(f"body longer than Content-Length {self._length}")
        return count

    def end(self, trailers: RawHeaderListType = []) -> bytes:  # noqa: B006 - never mutated
        """Terminate the message: last chunk and trailers when chunked."""
        if self.state is not _END_SOURCE:  # writer_transition(state, "end"), inline
            writer_transition(self.state, "end")  # raises
        self.state = _END_TARGET
        self.complete = True
        if self.framing is FRAMING_CHUNKED:
            _check_fields(trailers)
            return b"0\r\n%s\r\n" % _fields(trailers)
        if self.framing is FRAMING_LENGTH and self._sent < self._length:
            # The peer would wait for the missing bytes: the connection cannot be reused.
            self.keep_alive = False
            self.complete = False
        return b""

    def _set_framing(self, framing: Framing, length: int) -> None:
        self.framing = framing
        self._length = length


class ResponseWriter(_BodyWriter):
    """Frames one response. Decides Content-Length / chunked / close-delimited per RFC 9112 §6,
    strips hop-by-hop fields the app set (Connection, Keep-Alive, Transfer-Encoding, TE,
    Upgrade, Proxy-Connection, Trailer...), validates names/values (raising OutputSyntaxError),
    adds ``Connection: close`` when the connection will close (and ``Connection: keep-alive``
    for a persistent HTTP/1.0 exchange)."""

    def __init__(
        self, request_method: bytes, request_version: bytes, request_keep_alive: bool
    ) -> None:
        self._method = request_method
        self._version = request_version
        self.keep_alive = request_keep_alive

    def nonfinal(self, status: int, phrase: bytes, headers: RawHeaderListType) -> bytes:
        """An interim (1xx, not 101) response; nothing for an HTTP/1.0 client (RFC 9110 §15.2)."""
        self.state = writer_transition(self.state, "nonfinal")
        if not 100 <= status < 200 or status == 101:
            raise error.OutputStateError(f"nonfinal() needs a 1xx status other than 101: {status}")
        _check_phrase(phrase)
        _check_fields(headers)
        if self._version == b"1.0":
            return b""
        return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, phrase, _fields(headers))

    def start(
        self, status: int, phrase: bytes, headers: RawHeaderListType, extra: bytes = b""
    ) -> bytes:
        """The response head; ``extra`` is appended as is (pre-serialized CRLF-ended lines)."""
        if self.state is not _START_SOURCE:  # writer_transition(state, "start"), inline
            writer_transition(self.state, "start")  # raises
        self.state = _START_TARGET
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise error.OutputSyntaxError(f"invalid status {status!r}")
        if 100 <= status < 200 and status != 101:
            raise error.OutputStateError("use nonfinal() for interim responses")
        status_line = _status_line(status, phrase)
        # What the fields come to does not depend on the message (but for a 101's, which
        # keep Upgrade and Connection): remembered for the same fields, which applications
        # send again and again. A list holding an unhashable item is worked out every time.
        key: tuple[tuple[bytes, bytes], ...] | None = tuple(headers)
        try:
            known = _FIELDS_GET(key)  # type: ignore[arg-type]
        except TypeError:
            key = known = None
        if known is None or status == 101:
            lnames = _check_fields(headers)
            kept, lengths = headers, _NO_LENGTHS
            if not _FRAMING_OR_HOP.isdisjoint(lnames):
                kept, lengths = _strip_fields(status, headers, lnames)
            known = _fields(kept), _content_length(lengths) if lengths else None
            if key is not None and status != 101 and len(known[0]) <= _FIELDS_MAX_BYTES:
                _FIELDS.put(key, known)
        fields, length = known
        return b"%s%s%s%s\r\n" % (status_line, fields, extra, self._decide(status, length))

    def _decide(self, status: int, length: int | None) -> bytes:
        """Choose the framing (RFC 9112 §6.3) and return the fields that announce it;
        ``length`` is the Content-Length the application gave, if any."""
        out = b""
        if status == 101 or (self._method == b"CONNECT" and 200 <= status < 300):
            # RFC 9110 §15.2.2 / §9.3.6: after the head the connection is a tunnel; a 2xx to
            # CONNECT carries no Content-Length or Transfer-Encoding.
            self.framing = FRAMING_TUNNEL
            self.keep_alive = False
            return out
        if self._method == b"HEAD" or status == 204 or status == 304:
            # RFC 9110 §9.3.2 / §15.4.5: HEAD and 304 may carry the Content-Length the body
            # would have had; 204 never has one (§8.6).
            self.framing = FRAMING_NONE
            self._discard = True
            if length is not None and status != 204:
                out = b"Content-Length: %d\r\n" % length
        elif length is not None:
            self.framing = FRAMING_LENGTH
            self._length = length
            out = b"Content-Length: %d\r\n" % length
        elif self._version == b"1.1":
            self.framing = FRAMING_CHUNKED
            out = b"Transfer-Encoding: chunked\r\n"
        else:
            self.framing = FRAMING_CLOSE  # RFC 9112 §6.3 step 8 on the receiving end
            self.keep_alive = False
        if not self.keep_alive:
            out += b"Connection: close\r\n"
        elif self._version == b"1.0":
            out += b"Connection: keep-alive\r\n"  # RFC 9112 §9.3 / RFC 2068 §19.7.1
        return out


def _strip_fields(
    status: int, headers: RawHeaderListType, lnames: tuple[bytes, ...]
) -> tuple[RawHeaderListType, list[bytes]]:
    """(the fields to write, the Content-Length values) of a response's fields: hop-by-hop
    fields and those named in Connection are dropped (RFC 9110 §7.6.1), and Content-Length,
    which ResponseWriter._decide writes itself."""
    if HOP_BY_HOP.isdisjoint(lnames) and lnames.count(b"content-length") == 1:
        # The common case: one Content-Length and nothing hop-by-hop; what the general code
        # below returns then, with C-level calls instead of Python loops.
        i = lnames.index(b"content-length")
        return headers[:i] + headers[i + 1 :], [headers[i][1]]
    drop = _FRAMING_OR_HOP
    if b"connection" in lnames:
        named: set[bytes] = set()
        for name, (_, value) in zip(lnames, headers, strict=True):
            # "Connection: keep-alive" or "close" (the usual values) names no other field.
            if name == b"connection" and value.lower() not in PLAIN_CONNECTION_OPTIONS:
                named.update([token.lower() for token in split_list(value)])
        if named:
            drop = drop | named
    if status == 101:
        drop = drop - _UPGRADE_FIELDS  # RFC 9110 §15.2.2: Upgrade and Connection are the point
    kept: RawHeaderListType = []
    lengths: list[bytes] = []
    for name, field in zip(lnames, headers, strict=True):
        if name not in drop:
            kept.append(field)
        elif name == b"content-length":
            lengths.append(field[1])
    return kept, lengths


class RequestWriter(_BodyWriter):
    """Frames one request: Content-Length if given, chunked for a body of unknown length."""

    def start(
        self,
        method: bytes,
        target: bytes,
        headers: RawHeaderListType,
        *,
        has_body: bool | None = None,
    ) -> bytes:
        """The request head (always HTTP/1.1)."""
        self.state = writer_transition(self.state, "start")
        if not isinstance(method, bytes) or abnf.token_re.fullmatch(method) is None:
            raise error.OutputSyntaxError(f"invalid method {method!r}")
        if not isinstance(target, bytes) or _TARGET.fullmatch(target) is None:
            raise error.OutputSyntaxError(f"invalid request target {target!r}")
        lnames = _check_fields(headers)
        kept, lengths = headers, _NO_LENGTHS
        if b"content-length" in lnames or b"transfer-encoding" in lnames:
            # Most requests (a GET) have neither: then the fields go as they are.
            pairs = list(zip(lnames, headers, strict=True))
            lengths = [v for ln, (_, v) in pairs if ln == b"content-length"]
            kept = [h for ln, h in pairs if ln != b"transfer-encoding"]
        if b"connection" in lnames and b"close" in connection_tokens(headers):
            # RFC 9112 §9.6: a client that sends "close" sends no further request on the
            # connection. (Most requests name no Connection: one tuple lookup.)
            self.keep_alive = False
        if has_body is None:
            has_body = method in _BODY_METHODS
        extra = b""
        if lengths:
            self._set_framing(FRAMING_LENGTH, _content_length(lengths))
        elif has_body:
            self._set_framing(FRAMING_CHUNKED, 0)
            extra = b"Transfer-Encoding: chunked\r\n"
        return b"%s %s HTTP/1.1\r\n%s%s\r\n" % (method, target, _fields(kept), extra)


_TARGET = abnf.target_re


def _check_phrase(phrase: bytes) -> None:
    # RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
    if not isinstance(phrase, bytes) or abnf.bad_value_re.search(phrase):
        raise error.OutputSyntaxError(f"invalid reason phrase {phrase!r}")


def closing_response(answer: ErrorResponse, extra: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response after which the connection closes: how a server answers what
    it refuses before or instead of an exchange (``HttpError.as_response`` gives ``answer``).
    ``extra`` is the server's own pre-serialized lines (Date, Server)."""
    writer = ResponseWriter(b"GET", b"1.1", False)
    head = writer.start(answer.status, answer.phrase, answer.headers, extra)
    return head + writer.body(answer.body) + writer.end()
