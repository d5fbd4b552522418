"""Helpers for the tests of relayed protocol switches (WebSocket and other Upgrades)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.gateway.proxy_support import read_head
from thor_gateway.proxy import ProxyHandler

# RFC 6455 §1.3's example key and its accept value.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\nX-Up: 1\r\n\r\n"
)


def handshake(
    port: int, path: bytes = b"/ws/chat", extra: bytes = b"", fields: bytes = b""
) -> bytes:
    """A WebSocket opening handshake (RFC 6455 §4.1) as a raw request, ``extra`` after it."""
    return (
        b"GET %s HTTP/1.1\r\nHost: front\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
        % (path, KEY, fields)
        + extra
    )


def open_tunnel(port: int, extra: bytes = b"", fields: bytes = b"") -> tuple[socket.socket, bytes]:
    """Connect, send a handshake; returns (socket, everything read up to the head's end)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(handshake(port, extra=extra, fields=fields))
    return sock, read_head(sock)


def recv_exactly(sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def wait_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True once the peer closed (EOF or reset) within ``timeout``; bytes before are dropped."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0): an abrupt end, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def switch_and_echo(sock: socket.socket, head: bytes) -> None:
    """An upstream that answers 101 with ``first`` in the same packet, then echoes."""
    rest = head.partition(b"\r\n\r\n")[2]  # bytes the client sent with its request head
    sock.sendall(SWITCH + b"first")
    if rest:
        sock.sendall(rest)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def make_proxy(
    live_server: Callable[..., Any],
    upstreams: list[Any],
    prefix: bytes = b"/ws",
    server: dict[str, Any] | None = None,
    **settings: Any,
) -> tuple[Any, ProxyHandler]:
    """A live server (``server``: its settings) with a started ProxyHandler at ``prefix``."""
    live = live_server(**(server or {}))
    handler = ProxyHandler(upstreams, loop=live.loop, **settings)
    started = threading.Event()
    live.call(handler.startup, lambda exc: started.set())
    assert started.wait(5)
    live.mount(handler, prefix)
    return live, handler


class BufferWatch:
    """Samples, on the proxy's loop every 2 ms, the largest write buffer of its tunnels."""

    def __init__(self, live: Any, handler: ProxyHandler) -> None:
        self.live = live
        self.handler = handler
        self.peak = 0
        self.samples = 0
        self.running = True
        live.call(self._sample)

    def _sample(self) -> None:
        for tunnel in self.handler.tunnels:
            self.samples += 1
            self.peak = max(
                self.peak, tunnel.client.write_buffer_size, tunnel.upstream.write_buffer_size
            )
        if self.running:
            self.live.loop.schedule(0.002, self._sample)

    def stop(self) -> None:
        self.running = False


def open_tunnels(live: Any, handler: ProxyHandler) -> int:
    return int(live.call(lambda: len(handler.tunnels)))


def member_counts(live: Any, handler: ProxyHandler) -> list[tuple[int, int]]:
    """(active, tunnels) of every member, read on the loop."""
    return list(live.call(lambda: [(m.active, m.tunnels) for m in handler.upstreams.members]))
