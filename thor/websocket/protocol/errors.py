"""WebSocket errors, one class per cause.

Two kinds. Opening-handshake errors are HTTP errors (``thor.http.error.HttpError``) with the
status a server answers with, plus the header fields that answer must carry (RFC 6455 §4.2.2
asks a 426 to name the versions the server speaks). Errors *after* the handshake are not
exceptions: the connection reports them as a ``ProtocolError`` event carrying the close code
(see events.py), because the peer sent them and the IO layer must answer with a close frame.
``WebSocketStateError`` is the local application's mistake (sending after a close).
"""

from __future__ import annotations

from thor.http.error import HttpError, ThorError
from thor.http.headers import RawHeaderListType

__all__ = [
    "HandshakeError",
    "HandshakeResponseError",
    "UnsupportedVersionError",
    "WebSocketStateError",
]


class HandshakeError(HttpError):
    """A client's opening handshake that a server must refuse (RFC 6455 §4.2.1): 400."""

    desc = "Invalid WebSocket handshake"
    status = 400

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        # Header fields for the refusal, in addition to the usual ones.
        self.headers: RawHeaderListType = []


class UnsupportedVersionError(HandshakeError):
    """Sec-WebSocket-Version is missing or not 13 (RFC 6455 §4.2.2 step 4): 426 naming 13."""

    desc = "Unsupported WebSocket version"
    status = 426

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = [(b"Sec-WebSocket-Version", b"13")]


class HandshakeResponseError(HttpError):
    """A server's answer that a client must fail the connection for (RFC 6455 §4.1).

    ``status`` is what a gateway relaying the handshake answers with: 502.
    """

    desc = "Invalid WebSocket handshake response"
    status = 502


class WebSocketStateError(ThorError):
    """The local application called something its connection's state does not allow."""
