"""Servers and helpers for the HTTP client tests: real sockets on loopback, in threads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import thor.loop
from thor.http.client import HttpClient, HttpClientExchange
from thor.testing import run_for

Handler = Callable[[socket.socket], None]


class Result:
    """Everything an exchange emitted, in order."""

    def __init__(self, ex: HttpClientExchange, loop: thor.loop.Loop, stop: bool = True) -> None:
        self.order: list[str] = []
        self.nonfinal: list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]] = []
        self.status: bytes | None = None
        self.phrase: bytes | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.error: Exception | None = None
        self.pauses: list[bool] = []
        self.finished = False
        self._loop = loop
        self._stop = stop
        ex.on("response_nonfinal", self._nonfinal)
        ex.on("response_start", self._start)
        ex.on("response_body", self._body)
        ex.on("response_done", self._done)
        ex.on("error", self._error)
        ex.on("pause", self.pauses.append)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def _nonfinal(self, status: bytes, phrase: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.order.append("nonfinal")
        self.nonfinal.append((status, phrase, headers))

    def _start(self, status: bytes, phrase: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.order.append("start")
        self.status, self.phrase, self.headers = status, phrase, headers

    def _body(self, chunk: bytes) -> None:
        if not self.order or self.order[-1] != "body":
            self.order.append("body")
        self.chunks.append(chunk)

    def _done(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.order.append("done")
        self.trailers = trailers
        self._end()

    def _error(self, err: Exception) -> None:
        self.order.append("error")
        self.error = err
        self._end()

    def _end(self) -> None:
        assert not self.finished, "a second terminal event"
        self.finished = True
        if self._stop:
            self._loop.stop()


def fetch(
    loop: thor.loop.Loop,
    client: HttpClient,
    method: bytes | str,
    url: bytes | str,
    headers: list[tuple[Any, Any]] | None = None,
    body: bytes | list[bytes] | None = None,
    timeout: float = 10.0,
    **start_kwargs: Any,
) -> Result:
    """Make one request and run the loop until it ends."""
    ex = client.exchange()
    result = Result(ex, loop)
    ex.request_start(method, url, headers or [], **start_kwargs)
    if isinstance(body, bytes):
        ex.request_body(body)
    elif body:
        for chunk in body:
            ex.request_body(chunk)
    ex.request_done([])
    if not result.finished:
        run_for(loop, timeout)
    return result


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (from a test thread) until true; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def run_until(loop: thor.loop.Loop, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run ``loop`` until ``predicate()`` is true (checked every 5 ms)."""

    def check() -> None:
        if predicate():
            loop.stop()
        else:
            loop.schedule(0.005, check)

    loop.schedule(0, check)
    run_for(loop, timeout)


class RawServer:
    """A TCP server on 127.0.0.1 that runs ``handler(sock)`` per connection, in a thread."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.max_open = 0
        self._open = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(10)
            with self._lock:
                self.accepted += 1
                self._open += 1
                self.max_open = max(self.max_open, self._open)
                self._conns.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= 1
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(5)


@contextmanager
def raw_server(handler: Handler, host: str = "127.0.0.1") -> Iterator[RawServer]:
    server = RawServer(handler, host)
    try:
        yield server
    finally:
        server.stop()


def read_head(sock: socket.socket, buf: bytearray | None = None) -> tuple[bytes, bytearray]:
    """Read one request head; returns (head, bytes read after it)."""
    data = buf if buf is not None else bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF before the head")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return bytes(data[:end]), bytearray(data[end:])


def read_exact(sock: socket.socket, buf: bytearray, size: int) -> tuple[bytes, bytearray]:
    while len(buf) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF in the body")
        buf += chunk
    return bytes(buf[:size]), bytearray(buf[size:])


def read_chunked(sock: socket.socket, buf: bytearray) -> tuple[bytes, bytes, bytearray]:
    """Read a chunked body; returns (body, trailer block, rest)."""
    body = bytearray()
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("EOF in chunked body")
            buf += chunk
        line, _, rest = bytes(buf).partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        buf = bytearray(rest)
        if size == 0:
            while not (buf.startswith(b"\r\n") or b"\r\n\r\n" in buf):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("EOF in trailers")
                buf += chunk
            if buf.startswith(b"\r\n"):
                return bytes(body), b"", buf[2:]
            end = buf.index(b"\r\n\r\n")
            return bytes(body), bytes(buf[:end]), buf[end + 4 :]
        data, buf = read_exact(sock, buf, size + 2)
        body += data[:-2]


def header_value(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        n, sep, v = line.partition(b":")
        if sep and n.strip().lower() == name.lower():
            return v.strip()
    return None


class EchoHandler(BaseHTTPRequestHandler):
    """Stdlib handler: echoes method, path, Host and body; keeps connections alive."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(length) if length else b""
        path = self.path.encode()
        if path.startswith(b"/size/"):
            out = b"x" * int(path[6:])
        else:
            out = b"%s %s host=%s te=%s body=%s" % (
                self.command.encode(),
                path,
                (self.headers.get("Host") or "").encode(),
                (self.headers.get("Transfer-Encoding") or "").encode(),
                body,
            )
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Port", str(self.client_address[1]))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer


@contextmanager
def stdlib_server(handler: type[BaseHTTPRequestHandler] = EchoHandler) -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Clients:
    """Makes HttpClients on the test's loop and closes their idle connections at the end."""

    def __init__(self, loop: thor.loop.Loop) -> None:
        self.loop = loop
        self.made: list[HttpClient] = []

    def __call__(self, **settings: Any) -> HttpClient:
        client = HttpClient(self.loop, **settings)
        self.made.append(client)
        return client

    def close(self) -> None:
        for client in self.made:
            client.close()
