"""The switch-point example of docs/http.md runs: a WebSocket handshake, then frames."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import requests

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "http_switch.py"
HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked(text: bytes, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A client text frame (RFC 6455 §5.2: clients mask)."""
    return (
        bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    )


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_the_page_shows_the_example() -> None:
    source = EXAMPLE.read_text()
    handler = source[source.index("@thor.on(server)") : source.index("print(")].strip()
    assert handler in (EXAMPLE.parents[1] / "http.md").read_text()


def test_switch_example() -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.resolve().parents[2])}  # this tree's thor
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert requests.get(url, timeout=5).text.startswith("Upgrade: websocket")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(HANDSHAKE + masked(b"first"))  # a frame in the handshake's packet
            got = read_until(sock, b"first")
            head, _, frame = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            # RFC 6455 §1.3's worked example of the accept value.
            assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
            assert frame == b"\x81\x05first"
            sock.sendall(masked(b"second"))
            assert read_until(sock, b"second") == b"\x81\x06second"
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
