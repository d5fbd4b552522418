"""Sans-IO HTTP/1.1: parsers fed bytes that return events, writers that return bytes.

Nothing in this package does IO, reads a clock or starts a thread (a test checks the imports).
See docs/http-protocol.md.
"""

from thor.http.protocol.messages import (
    Body,
    End,
    Event,
    Framing,
    Invalid,
    RequestHead,
    ResponseHead,
)
from thor.http.protocol.request_reader import RequestParser
from thor.http.protocol.response_reader import ResponseParser
from thor.http.protocol.server_connection import ServerConnection
from thor.http.protocol.state import Cycle, ParserState, WriterState
from thor.http.protocol.writer import RequestWriter, ResponseWriter

__all__ = [
    "Body",
    "Cycle",
    "End",
    "Event",
    "Framing",
    "Invalid",
    "ParserState",
    "RequestHead",
    "RequestParser",
    "RequestWriter",
    "ResponseHead",
    "ResponseParser",
    "ResponseWriter",
    "ServerConnection",
    "WriterState",
]
