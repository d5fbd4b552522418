"""An ``h2`` package client over a real socket, for serving tests (bounded waits only)."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Response:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.informational: list[list[tuple[bytes, bytes]]] = []
        self.body = b""
        self.trailers: list[tuple[bytes, bytes]] = []
        self.ended = False
        self.reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class H2Client:
    """An ``h2`` client on a socket (TCP, or TLS with ALPN h2), reading until a condition."""

    def __init__(
        self,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        auto_ack: bool = True,
        upgrade: bool = False,
    ) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock: Any = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.auto_ack = auto_ack
        self.responses: dict[int, Response] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.events: list[Any] = []
        if upgrade:
            return
        self.conn.initiate_connection()
        self.flush()

    def upgrade(self, path: str = "/") -> bytes:
        """``Upgrade: h2c`` (RFC 7540 §3.2): GET ``path`` over HTTP/1.1; the answer is
        stream 1.  Returns the HTTP/1.1 response head."""
        settings = self.conn.initiate_upgrade_connection()
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n" % (path.encode(), settings)
        )
        buffer = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in buffer and time.monotonic() < deadline:
            buffer += self.sock.recv(65536)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        self.responses[1] = Response()
        self.flush()
        if rest:
            self._feed(rest)
        return head

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        trailers: list[tuple[str, str]] | None = None,
        end: bool = True,
    ) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        fields = [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            *(headers or []),
        ]
        self.conn.send_headers(sid, fields, end_stream=end and not body and not trailers)
        self.responses[sid] = Response()
        if body:
            self.send_body(sid, body, end=end and not trailers)
        if trailers:
            self.conn.send_headers(sid, trailers, end_stream=True)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True, timeout: float = 10) -> None:
        """Send ``body`` as the windows allow, reading (and waiting) for WINDOW_UPDATEs."""
        deadline = time.monotonic() + timeout
        while body:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                assert time.monotonic() < deadline, "the window stayed closed"
                self.read_once()
                continue
            chunk, body = body[:window], body[window:]
            self.conn.send_data(sid, chunk, end_stream=end and not body)
            self.flush()
        if end and not body and not self.conn.streams[sid].closed:
            pass

    def read_once(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._feed(data)
        return True

    def _feed(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            self.events.append(event)
            self._on_event(event)
        self.flush()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.responses[event.stream_id].headers = event.headers
        elif isinstance(event, h2.events.InformationalResponseReceived):
            self.responses[event.stream_id].informational.append(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.responses[event.stream_id].body += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.responses[event.stream_id].trailers = event.headers
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        """Read until ``predicate()`` or the deadline (fails) or the server closes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events so far: {self.events[-5:]}"
            if not self.read_once(min(left, 5.0)) and not predicate():
                raise AssertionError(f"connection closed; events: {self.events[-5:]}")

    def get(self, path: str = "/", **kwargs: Any) -> Response:
        sid = self.request(path, **kwargs)
        self.wait(lambda: self.responses[sid].ended or self.responses[sid].reset is not None)
        return self.responses[sid]

    def read_until_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.read_once(max(0.01, deadline - time.monotonic()))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
