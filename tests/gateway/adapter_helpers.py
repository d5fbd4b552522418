"""Helpers for the WSGI/ASGI adapter tests: raw sockets with deadlines, waiting."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_until_close(sock: socket.socket, deadline: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    end = time.monotonic() + deadline
    data = bytearray()
    while time.monotonic() < end:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    else:
        raise AssertionError(f"the server did not close within {deadline}s; got {data[:200]!r}")
    return bytes(data)


def read_head(sock: socket.socket, deadline: float = 10.0) -> tuple[bytes, bytes]:
    """One response head (through the blank line) and what came after it."""
    end = time.monotonic() + deadline
    data = b""
    while b"\r\n\r\n" not in data:
        if time.monotonic() > end:
            raise AssertionError(f"no complete head within {deadline}s: {data!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a complete head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def exchange_raw(port: int, request: bytes, *, half_close: bool = False) -> bytes:
    """Send ``request`` (and half-close if asked); return all the server sends."""
    with connect(port) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_until_close(sock)


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def body_of(response: bytes) -> bytes:
    """The body of one raw response (de-chunked when it is chunked)."""
    head, _, body = response.partition(b"\r\n\r\n")
    if b"\r\ntransfer-encoding: chunked" not in head.lower():
        return body
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return out


def push_held_upload(port: int, total: int, release: threading.Event) -> bytes:
    """POST ``total`` bytes while the app holds off reading: check that the upload stalls
    until ``release`` is set (request-body backpressure), then return the response."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sent_all = threading.Event()

    def push() -> None:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % total
        )
        sock.sendall(b"p" * total)
        sent_all.set()

    pusher = threading.Thread(target=push)
    pusher.start()
    try:
        assert not sent_all.wait(0.5), "the whole upload went through while the app was not reading"
        release.set()
        assert sent_all.wait(10)
        return read_until_close(sock)
    finally:
        release.set()
        pusher.join(10)
        sock.close()


def stalled_download(port: int, produced: list[int]) -> int:
    """GET / and do not read: check that the app stops producing (response backpressure)
    well before 16 MiB, then read everything; returns the bytes received."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        wait_for(lambda: produced[0] > 1024 * 1024, what="the app to start producing")
        last = -1
        for _ in range(100):
            if produced[0] == last:
                break
            last = produced[0]
            threading.Event().wait(0.1)
        assert produced[0] == last, "the app kept producing for a client that does not read"
        assert produced[0] < 16 * 1024 * 1024
        return len(read_until_close(sock, deadline=60))
