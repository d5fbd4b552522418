"""A strict keep-alive load client: every request sent must be answered (no retries).

Unlike :class:`tests.gateway.gateway_helpers.Load`, which retries a request lost on a reused
connection the server closed as idle (as HTTP clients may, RFC 9112 §9.3.1), this client
counts it as lost: it is the case a lossless reload or stop must not produce.  One thread
drives ``connections`` non-blocking sockets with a selector; each sends a GET as soon as
the previous response is complete (as wrk does), so a connection is idle only for the
moment between receiving a response and sending the next request.

Outcomes: ``ok`` (a complete 200), ``lost`` (the request was sent, then the connection
ended or was reset before the response was complete: these and ``bad`` answers are
failures), ``refused`` (a new connection refused or reset before anything was sent:
the request was never sent).  A response with ``Connection: close`` is followed by a new
connection.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection: *close", re.IGNORECASE)


@dataclass
class Tally:
    ok: int = 0
    refused: int = 0
    unsent: int = 0  # the server had reset the connection: the request could not go out
    reconnects: int = 0
    lost: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


class _Conn:
    __slots__ = ("received", "request", "sent", "sock")

    def __init__(self, sock: socket.socket, request: bytes) -> None:
        self.sock = sock
        self.request = request
        self.sent = False  # a request went out on this socket and is not answered yet
        self.received = b""


class KeepAliveLoad:
    """Run in a thread until :meth:`stop` or ``seconds``; results in :attr:`tally`."""

    def __init__(
        self, port: int, paths: list[str], *, connections: int = 24, seconds: float = 20.0
    ) -> None:
        self.port = port
        # Connection i asks for paths[i % len(paths)], for as long as it lives.
        self.requests = [b"GET %s HTTP/1.1\r\nHost: load\r\n\r\n" % p.encode() for p in paths]
        self._opened = 0
        self.connections = connections
        self.seconds = seconds
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keepalive-load", daemon=True)
        self._selector = selectors.DefaultSelector()

    def __enter__(self) -> KeepAliveLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_ok(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tally.ok < count:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise AssertionError(f"only {self.tally.ok} of {count} requests answered")
            time.sleep(0.01)

    # ----------------------------------------------------------------- driving

    def _open(self) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.tally.refused += 1
            return
        request = self.requests[self._opened % len(self.requests)]
        self._opened += 1
        self._selector.register(sock, selectors.EVENT_WRITE, _Conn(sock, request))

    def _send(self, conn: _Conn) -> None:
        """The connection is writable: connected (or failed to), or ready for a request."""
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._drop(conn)
            self.tally.refused += 1
            return
        try:
            conn.sock.send(conn.request)  # a few dozen bytes: the socket buffer takes them
        except (BrokenPipeError, ConnectionResetError):
            self._drop(conn)
            self.tally.unsent += 1
            return
        conn.sent = True
        conn.received = b""
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _receive(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except ConnectionResetError:
            data = None
        if not data:
            why = "reset" if data is None else "closed"
            self.tally.lost.append(f"{why} after {len(conn.received)} response bytes")
            self._drop(conn)
            return
        conn.received += data
        head, sep, body = conn.received.partition(b"\r\n\r\n")
        length = _LENGTH.search(head) if sep else None
        if length is None or len(body) < int(length[1]):
            return  # more to come
        if not head.startswith(b"HTTP/1.1 200"):
            self.tally.bad.append(head[:60].decode("latin-1"))
        else:
            self.tally.ok += 1
        conn.sent = False
        if _CLOSE.search(head):
            self._drop(conn)
            self.tally.reconnects += 1
            if not self._stop.is_set():
                self._open()
            return
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def _drop(self, conn: _Conn) -> None:
        self._selector.unregister(conn.sock)
        conn.sock.close()

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        for _ in range(self.connections):
            self._open()
        refill = 0.0
        while not self._stop.is_set() and (now := time.monotonic()) < deadline:
            for key, _ in self._selector.select(0.05):
                conn: _Conn = key.data
                if conn.sent:
                    self._receive(conn)
                else:
                    self._send(conn)
            if now >= refill:  # replace connections refused or lost, 20 times a second
                refill = now + 0.05
                for _ in range(self.connections - len(self._selector.get_map())):
                    self._open()
        for key in list(self._selector.get_map().values()):
            self._drop(key.data)
        self._selector.close()
