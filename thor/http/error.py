"""HTTP errors, one class per cause.

Names and ``status`` values follow Thor 0.17 so that existing handlers keep
working; ``status`` is the status code a server answers with when it is the one
that detected the problem. ``OutputError`` and its subclasses mean that the
*local* application produced an invalid message; everything else describes what
the peer sent (or what happened on the way to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import NamedTuple

__all__ = [
    "AccessError",
    "BareCRError",
    "ChunkError",
    "ChunkTerminatorError",
    "ConnectError",
    "ContentTooLargeError",
    "DnsError",
    "DuplicateCLError",
    "ErrorResponse",
    "ExtraDataError",
    "FieldSectionTooLargeError",
    "HeaderLineEndingError",
    "HeaderNameError",
    "HeaderNoColonError",
    "HeaderSpaceError",
    "HeaderValueError",
    "HostRequiredError",
    "HttpError",
    "HttpVersionError",
    "IncompleteMessageError",
    "InvalidHostError",
    "LengthRequiredError",
    "MalformedCLError",
    "MethodNotAllowedError",
    "ObsoleteFoldError",
    "OutputError",
    "OutputStateError",
    "OutputSyntaxError",
    "ReadTimeoutError",
    "RequestLineError",
    "RequestLineTooLongError",
    "RequestTimeoutError",
    "RequestTransferEncodingError",
    "ServiceUnavailableError",
    "StartLineError",
    "ThorError",
    "TooManyFieldsError",
    "TooManyMsgsError",
    "TopLineSpaceError",
    "TransferCodeError",
    "TransferEncodingCLError",
    "UpstreamError",
    "UrlError",
]


class ErrorResponse(NamedTuple):
    """A whole response: what ``exchange.respond(*answer)`` or a raw writer needs."""

    status: int
    phrase: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ThorError(Exception):
    """Base class of every error Thor raises on purpose."""


class HttpError(ThorError):
    """An HTTP-level problem; ``status`` is what a server answers with."""

    desc: str = "Unknown Error"
    status: int = 500
    server_recoverable: bool = False
    client_recoverable: bool = False

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def server_status(self) -> tuple[bytes, bytes]:
        """``(b"400", b"Bad Request")``: the Thor 0.17 spelling of ``status``."""
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:  # pragma: no cover - every class uses a registered status
            phrase = "Unknown"
        return str(self.status).encode("ascii"), phrase.encode("ascii")

    def as_response(
        self, extra: Sequence[tuple[bytes, bytes]] = (), body: bytes | None = None
    ) -> ErrorResponse:
        """The short plain-text answer to this error, the one shape every error response has.

        The body is ``b"<status> <desc>\\n"`` unless one is given.  It never echoes request
        data (the detail stays in the logs: no reflected markup, nothing to escape), so it is
        text/plain and sized up front: a ``Content-Length`` lets the connection stay open
        when nothing else closes it.  ``extra`` fields (``Retry-After``, ``Allow``) follow
        the two fields made here.
        """
        if body is None:
            body = b"%d %s\n" % (self.status, self.desc.encode("utf-8"))
        headers = [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", b"%d" % len(body)),
            *extra,
        ]
        return ErrorResponse(self.status, self.server_status[1], headers, body)

    def __str__(self) -> str:
        if self.detail:
            return f"{self.desc}: {self.detail}"
        return self.desc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r})"


# --- errors in what the peer sent: 400 unless noted -------------------------------------------


class AccessError(HttpError):
    desc = "Access Denied"
    status = 403


class BareCRError(HttpError):
    desc = "Bare CR as line ending"
    status = 400
    client_recoverable = True


class ChunkError(HttpError):
    desc = "Chunked encoding error"
    status = 400


class ChunkTerminatorError(ChunkError):
    desc = "Chunk data not followed by CRLF"


class DuplicateCLError(HttpError):
    desc = "Duplicate or list Content-Length"
    status = 400
    client_recoverable = True


class ExtraDataError(HttpError):
    desc = "Extra data after message"
    status = 400


class FieldSectionTooLargeError(HttpError):
    desc = "Field section too large"
    status = 431
    client_recoverable = True


class TooManyFieldsError(HttpError):
    desc = "Too many fields"
    status = 431
    client_recoverable = True


class HeaderLineEndingError(HttpError):
    desc = "Line not ended by CRLF"
    status = 400
    client_recoverable = True


class HeaderNameError(HttpError):
    desc = "Invalid field name"
    status = 400
    client_recoverable = True


class HeaderNoColonError(HttpError):
    desc = "Field line without a colon"
    status = 400
    client_recoverable = True


class HeaderSpaceError(HttpError):
    desc = "Whitespace between field name and colon"
    status = 400
    client_recoverable = True


class HeaderValueError(HttpError):
    desc = "Invalid character in field value"
    status = 400
    client_recoverable = True


class ObsoleteFoldError(HttpError):
    desc = "Obsolete line folding"
    status = 400
    client_recoverable = True


class TopLineSpaceError(HttpError):
    desc = "Whitespace after the start line"
    status = 400
    client_recoverable = True


class HostRequiredError(HttpError):
    desc = "Host header required"
    status = 400


class InvalidHostError(HttpError):
    desc = "Invalid Host header"
    status = 400


class HttpVersionError(HttpError):
    desc = "Unsupported HTTP version"
    status = 505


class LengthRequiredError(HttpError):
    desc = "Content-Length required"
    status = 411
    client_recoverable = True


class MalformedCLError(HttpError):
    desc = "Malformed Content-Length"
    status = 400


class TransferEncodingCLError(HttpError):
    desc = "Both Transfer-Encoding and Content-Length"
    status = 400


class RequestTransferEncodingError(HttpError):
    desc = "Invalid Transfer-Encoding in request"
    status = 400


class TooManyMsgsError(HttpError):
    desc = "Too many pipelined messages"
    status = 400


class UrlError(HttpError):
    desc = "Invalid URL"
    status = 400


class StartLineError(HttpError):
    desc = "Invalid start line"
    status = 400


class RequestLineError(HttpError):
    desc = "Invalid request line"
    status = 400
    server_recoverable = True


class RequestLineTooLongError(HttpError):
    desc = "Request line too long"
    status = 414


class ContentTooLargeError(HttpError):
    desc = "Content too large"
    status = 413


class IncompleteMessageError(HttpError):
    desc = "Connection closed before the message was complete"
    status = 400


class TransferCodeError(HttpError):
    desc = "Unsupported transfer coding"
    status = 501


class MethodNotAllowedError(HttpError):
    desc = "Method not allowed"
    status = 405


class RequestTimeoutError(HttpError):
    desc = "Request timeout"
    status = 408


# --- errors talking to an upstream (client side) ---------------------------------------------


class ConnectError(HttpError):
    desc = "Connection error"
    status = 504


class DnsError(HttpError):
    desc = "DNS lookup error"
    status = 502


class ReadTimeoutError(HttpError):
    desc = "Read timeout"
    status = 504


class UpstreamError(HttpError):
    desc = "Invalid response from upstream"
    status = 502


class ServiceUnavailableError(HttpError):
    desc = "Service unavailable"
    status = 503


# --- errors made locally: the application produced an invalid message -------------------------


class OutputError(HttpError):
    desc = "Invalid output"
    status = 500


class OutputStateError(OutputError):
    desc = "Output called out of order"


class OutputSyntaxError(OutputError):
    desc = "Invalid characters in output"
