"""Sans-IO WebSocket (RFC 6455, RFC 7692 permessage-deflate): handshake, framing, closing.

Nothing in this package does IO, reads a clock or starts a thread (tests/test_sans_io.py
checks it in a fresh interpreter). See docs/websocket.md.
"""

from thor.websocket.protocol.connection import DEFAULT_MAX_MESSAGE_SIZE, Connection, Role
from thor.websocket.protocol.deflate import Deflate, DeflateConfig
from thor.websocket.protocol.errors import (
    HandshakeError,
    HandshakeResponseError,
    UnsupportedVersionError,
    WebSocketStateError,
)
from thor.websocket.protocol.events import (
    BytesFragment,
    BytesMessage,
    CloseReceived,
    ConnectionLost,
    Event,
    Ping,
    Pong,
    ProtocolError,
    TextFragment,
    TextMessage,
)
from thor.websocket.protocol.handshake import (
    Accepted,
    ClientRequest,
    Request,
    accept,
    accept_value,
    client_request,
    read_request,
)
from thor.websocket.protocol.state import ConnectionState

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Accepted",
    "BytesFragment",
    "BytesMessage",
    "ClientRequest",
    "CloseReceived",
    "Connection",
    "ConnectionLost",
    "ConnectionState",
    "Deflate",
    "DeflateConfig",
    "Event",
    "HandshakeError",
    "HandshakeResponseError",
    "Ping",
    "Pong",
    "ProtocolError",
    "Request",
    "Role",
    "TextFragment",
    "TextMessage",
    "UnsupportedVersionError",
    "WebSocketStateError",
    "accept",
    "accept_value",
    "client_request",
    "read_request",
]
