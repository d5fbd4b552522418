"""Upstreams for the proxy tests: stdlib http.server, and raw-socket servers that misbehave."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[socket.socket, bytes], None]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def read_head(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the end of a message head (or EOF); returns everything read."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until EOF (or timeout)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


class RawUpstream:
    """A loopback server that runs ``script(sock, head)`` for each connection, in a thread.

    ``head`` is the request head it read (and whatever came with it).  Records every head
    received and whether each connection was closed by the peer before the script ended.
    """

    def __init__(self, script: Script, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host if family == socket.AF_INET else '[' + host + ']'}:{self.port}"
        self.script = script
        self.heads: list[bytes] = []
        self.connections = 0
        self.peer_closed: list[bool] = []
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            head = read_head(conn)
            if not head:
                return
            self.heads.append(head)
            try:
                self.script(conn, head)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self._accept.join(5)
        self.sock.close()
        for thread in self._threads:
            thread.join(5)


@contextmanager
def raw_upstream(script: Script, host: str = "127.0.0.1", port: int = 0) -> Iterator[RawUpstream]:
    server = RawUpstream(script, host, port)
    try:
        yield server
    finally:
        server.close()


class EchoHandler(BaseHTTPRequestHandler):
    """Answers JSON describing the request: method, path, headers, body length; some paths
    behave differently (``/status/NNN``, ``/big/N`` N bytes of text, ``/health`` and
    ``/flaky`` answer the status set with ``EchoServer.set_health``)."""

    protocol_version = "HTTP/1.1"
    server_version = "echo"
    health_status = 200
    name = "echo"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in ("/health", "/flaky"):
            self.send_response(self.server.health_status)  # type: ignore[attr-defined]
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/big/"):
            size = int(self.path.split("/")[2])
            payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
            ctype = "text/plain"
        else:
            payload = json.dumps(
                {
                    "server": self.server.name,  # type: ignore[attr-defined]
                    "method": self.command,
                    "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body": len(body),
                    "body_text": body[:200].decode("latin-1"),
                }
            ).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "X-Upstream-Hop")
        self.send_header("X-Upstream-Hop", "secret")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _answer


class EchoServer:
    """A stdlib ThreadingHTTPServer running :class:`EchoHandler` in a thread."""

    def __init__(self, name: str = "echo", host: str = "127.0.0.1", port: int = 0) -> None:
        server_class = ThreadingHTTPServer
        if ":" in host:

            class V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_class = V6
        self.httpd = server_class((host, port), EchoHandler)
        self.httpd.daemon_threads = True
        self.httpd.name = name  # type: ignore[attr-defined]
        self.httpd.health_status = 200  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def set_health(self, status: int) -> None:
        self.httpd.health_status = status  # type: ignore[attr-defined]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@contextmanager
def echo_server(name: str = "echo", host: str = "127.0.0.1", port: int = 0) -> Iterator[EchoServer]:
    server = EchoServer(name, host, port)
    try:
        yield server
    finally:
        server.close()


def refused_port() -> int:
    """A loopback port where nothing listens (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` to the proxy, read until it closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock, timeout)
