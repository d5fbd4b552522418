"""TCP connections, servers and clients on the loop.

A :class:`TcpConnection` moves bytes and emits events; it makes no protocol
decisions.  Its events, in order::

    data(bytes)*  [close()]  disconnect()
    pause(bool)   at any time, for the write side

- ``data``: bytes arrived (not emitted while reading is paused).
- ``close``: the peer closed its side (EOF) or the connection was lost.  After
  an EOF you may still write (half-close) until you call ``close()``.
  It is not emitted when *you* close the connection.
- ``disconnect``: the socket is closed; nothing more will happen.
- ``pause(True)``: more than ``write_high_water`` bytes wait to be sent; stop
  writing.  ``pause(False)``: the buffer drained below ``write_low_water``.
  Writes are never refused, so flow control is the writer's job: a proxy that
  honours ``pause`` streams any amount of data in bounded memory.

``pause(True)`` the *method* stops reading (and so, through TCP's window, the
peer); ``pause(False)`` resumes it.  Connections start reading at once.

``close()`` flushes what is buffered, sends FIN, and keeps reading (and
discarding) until the peer's FIN or ``close_timeout``, so that unread input
does not turn into a reset that destroys the last response in flight
(RFC 9112 §9.6, "lingering close").  ``abort()`` closes at once.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import thor._sockets as _sockets
import thor.dns
import thor.loop
from thor.events import EventEmitter

__all__ = ["TcpClient", "TcpConnection", "TcpServer"]

log = logging.getLogger("thor.tcp")

# sendmsg takes at most IOV_MAX buffers; stay well below it.
_MAX_IOV = 64
# Errors of accept() that mean "out of a resource": back off instead of spinning.
_ACCEPT_BACKOFF_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EPERM}
)
# connect_ex() results that mean "wait for writability".
_INET_CONNECTING = frozenset({errno.EINPROGRESS, errno.EAGAIN})
_UNIX_CONNECTING = frozenset({errno.EINPROGRESS})
# Errors of accept() about one connection that died in the queue: skip it.
_ACCEPT_SKIP_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})


class ConnState(enum.Enum):
    """The life of a connection (the read and write halves close separately)."""

    OPEN = "open"  # bytes move both ways (a half may already be shut)
    FLUSHING = "flushing"  # close() was called; sending what is buffered
    LINGERING = "lingering"  # FIN sent after close(); discarding input until EOF
    CLOSED = "closed"  # the socket is closed


class TcpConnection(EventEmitter):
    """A connected stream socket.  See the module docstring for its events."""

    # recv(n) allocates n bytes, then shrinks them: above glibc's 128 KiB mmap
    # threshold that is an mmap/munmap per read (3x the CPU: docs/tcp.md).
    read_bufsize = 64 * 1024
    write_high_water = 256 * 1024
    write_low_water = 64 * 1024
    close_timeout = 2.0

    def __init__(self, sock: socket.socket, address: Any, loop: thor.loop.Loop | None = None):
        super().__init__()
        self.socket = sock
        self.address = address  # the peer's address
        self._loop = loop or thor.loop._loop
        sock.setblocking(False)  # an adopted socket may still be blocking
        self._fd = sock.fileno()
        self.state = ConnState.OPEN
        self._buffer: deque[bytes | memoryview] = deque()
        self._buffered = 0
        self._write_paused = False
        self._read_paused = False
        self._peer_eof = False
        self._write_shut = False
        self._linger_timer: thor.loop.ScheduledEvent | None = None
        self._loop.add_reader(self._fd, self._on_readable)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address!r} {self.state.value}>"

    @property
    def tcp_connected(self) -> bool:
        """True while bytes can still be written."""
        return self.state is ConnState.OPEN and not self._write_shut

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self._buffered

    def set_write_buffer_limits(self, high: int, low: int | None = None) -> None:
        """Set the water marks of write flow control (low defaults to high / 4)."""
        low = high // 4 if low is None else low
        if not 0 <= low <= high:
            raise ValueError("need 0 <= low <= high")
        self.write_high_water = high
        self.write_low_water = low

    # ------------------------------------------------------------------ reading

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading from the peer."""
        if paused == self._read_paused:
            return
        self._read_paused = paused
        if self.state is ConnState.OPEN and not self._peer_eof:
            if paused:
                self._loop.remove_reader(self._fd)
            else:
                self._loop.add_reader(self._fd, self._on_readable)

    def _recv(self, size: int) -> bytes:
        return self.socket.recv(size)

    def _on_readable(self) -> None:
        try:
            data = self._recv(self.read_bufsize)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(error)
            return
        if not data:
            self._on_eof()
        elif self.state is ConnState.OPEN:
            self.emit("data", data)

    def _on_eof(self) -> None:
        self._peer_eof = True
        self._loop.remove_reader(self._fd)
        if self.state is ConnState.OPEN:
            self.emit("close")
            if self._write_shut and not self._buffer and self.state is ConnState.OPEN:
                self._destroy()
        elif self.state is ConnState.LINGERING:
            self._destroy()

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes | memoryview) -> None:
        """Send ``data``, buffering what the kernel does not take now.

        Data written after the connection closed is dropped: its ``close`` or
        ``disconnect`` event has already said so.
        """
        if self.state is not ConnState.OPEN or self._write_shut or not data:
            return
        if not self._buffer:
            try:
                sent = self._send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                # Not from inside write(): the caller is in the middle of
                # something, so the events come on the next iteration.
                self._lost(error, deferred=True)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
            self._loop.add_writer(self._fd, self._on_writable)
        self._buffer.append(data)
        self._buffered += len(data)
        if not self._write_paused and self._buffered > self.write_high_water:
            self._write_paused = True
            self.emit("pause", True)

    def _send(self, data: bytes | memoryview) -> int:
        return self.socket.send(data)

    def _send_many(self, buffers: list[bytes | memoryview]) -> int:
        return self.socket.sendmsg(buffers)

    def _on_writable(self) -> None:
        buffer = self._buffer
        try:
            if len(buffer) == 1:
                sent = self._send(buffer[0])
            else:
                sent = self._send_many([buffer[i] for i in range(min(len(buffer), _MAX_IOV))])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(error)
            return
        self._buffered -= sent
        while sent:
            first = buffer[0]
            if sent >= len(first):
                sent -= len(first)
                buffer.popleft()
            else:
                buffer[0] = memoryview(first)[sent:]
                sent = 0
        if not buffer:
            self._loop.remove_writer(self._fd)
            self._on_drained()
            if self.state is ConnState.CLOSED:
                return
        if self._write_paused and self._buffered <= self.write_low_water:
            self._write_paused = False
            self.emit("pause", False)

    def _on_drained(self) -> None:
        if self.state is ConnState.FLUSHING:
            self._linger()
        elif self._write_shut:
            self._shutdown_socket()

    # ------------------------------------------------------------------ closing

    def shutdown_write(self) -> None:
        """Half-close: send FIN once the buffer is flushed, and keep reading."""
        if self.state is not ConnState.OPEN or self._write_shut:
            return
        self._write_shut = True
        if not self._buffer:
            self._shutdown_socket()

    def _shutdown_socket(self) -> None:
        try:
            self._send_eof()
        except OSError:
            pass
        if self._peer_eof and self.state is ConnState.OPEN:
            self._destroy()

    def close(self) -> None:
        """Flush, send FIN, then close once the peer has closed too (or after a while)."""
        if self.state is not ConnState.OPEN:
            return
        if self._peer_eof and not self._buffer:
            self._destroy()
            return
        self.state = ConnState.FLUSHING
        if self._read_paused and not self._peer_eof:
            self._loop.add_reader(self._fd, self._on_readable)  # to discard and see EOF
        if not self._buffer:
            self._linger()

    def _linger(self) -> None:
        if self._peer_eof:
            self._destroy()
            return
        self.state = ConnState.LINGERING
        try:
            self._send_eof()
        except OSError:
            self._destroy()
            return
        self._linger_timer = self._loop.schedule(self.close_timeout, self._destroy)

    def _send_eof(self) -> None:
        """Send FIN (TLS overrides this to send close_notify first); may raise OSError."""
        self.socket.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        """Close now, dropping anything not yet sent."""
        if self.state is not ConnState.CLOSED:
            self._destroy()

    def _lost(self, error: OSError, deferred: bool = False) -> None:
        if self.state is ConnState.CLOSED:
            return
        log.debug("connection %r lost: %s", self.address, error)
        emit_close = self.state is ConnState.OPEN and not self._peer_eof
        self._destroy(emit=False)
        if deferred:
            self._loop.call_soon(self._emit_lost, emit_close)
        else:
            self._emit_lost(emit_close)

    def _emit_lost(self, emit_close: bool) -> None:
        if emit_close:
            self.emit("close")
        self.emit("disconnect")

    def _destroy(self, emit: bool = True) -> None:
        if self.state is ConnState.CLOSED:
            return
        self.state = ConnState.CLOSED
        if self._linger_timer is not None:
            self._linger_timer.delete()
            self._linger_timer = None
        self._loop._set_handlers(self._fd, None, None)
        self._buffer.clear()
        self._buffered = 0
        self.socket.close()
        if emit:
            self.emit("disconnect")


class TcpServer(EventEmitter):
    """Accepts connections.  Events: ``start``, ``connect(conn)``, ``stop``.

    Listen on ``host``/``port`` (IPv4, IPv6; ``None``, ``""`` or ``"::"`` for
    every address, dual-stack), or a UNIX ``path``, or adopt a bound ``sock``
    or descriptor ``fd``.  ``port=0`` picks a free port: read ``self.port``.
    Also emits ``accept_paused(errno)`` / ``accept_resumed()`` when accepting
    backs off for lack of descriptors or memory.
    """

    connection_class: type[TcpConnection] = TcpConnection
    accept_backoff = 0.5
    accept_batch = 64

    def __init__(
        self,
        host: str | bytes | None = None,
        port: int = 0,
        sock: socket.socket | None = None,
        loop: thor.loop.Loop | None = None,
        backlog: int = 1024,
        *,
        path: str | None = None,
        fd: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__()
        self.loop = loop or thor.loop._loop
        if sock is None and fd is not None:
            sock = socket.socket(fileno=fd)
        if sock is None and path is not None:
            sock = _sockets.unix_listening_socket(path, backlog)
        if sock is None:
            sock = _sockets.listening_socket(_sockets.text(host), port, backlog, reuse_port)
        self.sock = sock
        self.path = path
        self.backlog = backlog
        sock.setblocking(False)
        address = sock.getsockname()
        self.address = address
        if isinstance(address, tuple):
            self.host: str = address[0]
            self.port: int = address[1]
        else:
            self.host, self.port = str(address), 0
        self.active_connections: set[TcpConnection] = set()
        self.accepting = True
        self._stop_timer: thor.loop.ScheduledEvent | None = None
        self._backoff_timer: thor.loop.ScheduledEvent | None = None
        # Accept only after 'start' was emitted, so that 'connect' never comes first.
        self.loop.call_soon(self._start)

    def _start(self) -> None:
        self.emit("start")
        if self.accepting and self._backoff_timer is None:
            self.loop.add_reader(self.sock.fileno(), self._on_acceptable)

    def _on_acceptable(self) -> None:
        for _ in range(self.accept_batch):
            if not self._accept_one():
                return

    def _accept_one(self) -> bool:
        try:
            sock, address = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as error:
            if error.errno in _ACCEPT_SKIP_ERRNOS:
                return True
            # Out of descriptors or memory (or an error we do not know): the
            # socket stays readable, so accepting again at once would spin.
            # Back off; the kernel keeps the queue meanwhile.
            level = logging.WARNING if error.errno in _ACCEPT_BACKOFF_ERRNOS else logging.ERROR
            log.log(level, "accept failed (%s); pausing for %ss", error, self.accept_backoff)
            self._pause_accepting(error.errno or 0)
            return False
        _sockets.tune(sock)
        self._accepted(sock, address)
        return True

    def _pause_accepting(self, code: int) -> None:
        if self._backoff_timer is not None or not self.accepting:
            return
        self.loop.remove_reader(self.sock.fileno())
        self._backoff_timer = self.loop.schedule(self.accept_backoff, self._resume_accepting)
        self.emit("accept_paused", code)

    def _resume_accepting(self) -> None:
        self._backoff_timer = None
        if self.accepting:
            self.loop.add_reader(self.sock.fileno(), self._on_acceptable)
            self.emit("accept_resumed")

    def _accepted(self, sock: socket.socket, address: Any) -> None:
        """Wrap a new socket (TLS servers override this to shake hands first)."""
        self._add_connection(self.connection_class(sock, address, self.loop))

    def _add_connection(self, conn: TcpConnection) -> None:
        self.active_connections.add(conn)
        conn.on("disconnect", lambda: self._forget(conn))
        self.emit("connect", conn)

    def _forget(self, conn: TcpConnection) -> None:
        self.active_connections.discard(conn)
        if not self.accepting and not self.active_connections and self._stop_timer:
            self._stop_timer.delete()
            self._stop_timer = None
            self.emit("stop")

    def stop_accepting(self, drain_backlog: bool = True) -> None:
        """Close the listening socket.

        With ``drain_backlog``, connections the kernel has already completed
        are accepted (and emitted) first, so that none of them is reset.
        """
        if not self.accepting:
            return
        if drain_backlog and self._backoff_timer is None:
            # Bounded: the backlog is finite, but a flood must not hold us here.
            for _ in range(self.backlog):
                if not self._accept_one():
                    break
        self.accepting = False
        if self._backoff_timer is not None:
            self._backoff_timer.delete()
            self._backoff_timer = None
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def shutdown(self) -> None:
        """Stop listening now; open connections live on.  Emits ``stop``."""
        self.stop_accepting(drain_backlog=False)
        self.emit("stop")

    def graceful_shutdown(self, timeout: float | None = None) -> None:
        """Stop listening, then emit ``stop`` once every connection has closed.

        After ``timeout`` seconds the connections still open are aborted.
        """
        self.stop_accepting()
        if not self.active_connections:
            self.emit("stop")
            return
        self._stop_timer = self.loop.schedule(
            timeout if timeout is not None else 1e9, self._abort_all
        )

    def _abort_all(self) -> None:
        self._stop_timer = None
        for conn in list(self.active_connections):
            conn.abort()
        self.active_connections.clear()
        self.emit("stop")


class TcpClient(EventEmitter):
    """Opens a connection.  Events: ``connect(conn)``, ``connect_error(kind, errno, msg)``.

    ``kind`` is ``"gai"`` (the name did not resolve), ``"access"`` (``check_ip``
    refused every address) or ``"socket"`` (refused, unreachable, timed out).
    Names are resolved with :mod:`thor.dns`; every address is tried in turn.
    """

    connection_class: type[TcpConnection] = TcpConnection
    check_ip: Callable[[str], bool] | None = None

    def __init__(self, loop: thor.loop.Loop | None = None) -> None:
        super().__init__()
        self.loop = loop or thor.loop._loop
        self.sock: socket.socket | None = None
        self._addresses: list[thor.dns.DnsResult] = []
        self._timer: thor.loop.ScheduledEvent | None = None
        self._last_error: tuple[str, int, str] = ("socket", errno.ECONNREFUSED, "no address")
        self._done = False
        self._attempt = 0

    def connect(self, host: str | bytes, port: int, connect_timeout: float | None = None) -> None:
        """Connect to ``host``:``port``; one of the two events follows (never synchronously)."""
        self._start(connect_timeout)
        attempt = self._attempt

        def resolved(results: list[thor.dns.DnsResult] | Exception) -> None:
            if attempt == self._attempt:  # not the answer of an earlier, timed-out attempt
                self._on_resolved(results)

        thor.dns.lookup(host, port, resolved, loop=self.loop)

    def connect_unix(self, path: str, connect_timeout: float | None = None) -> None:
        """Connect to a UNIX socket."""
        self._start(connect_timeout)
        self._addresses = [(socket.AF_UNIX, socket.SOCK_STREAM, 0, "", path)]
        self.loop.call_soon(self._try_next)

    def _start(self, connect_timeout: float | None) -> None:
        # A client may connect again once the previous attempt has ended.
        self._attempt += 1
        self._done = False
        self._last_error = ("socket", errno.ECONNREFUSED, "no address")
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        if connect_timeout:
            self._timer = self.loop.schedule(connect_timeout, self._on_timeout)

    def _on_resolved(self, results: list[thor.dns.DnsResult] | Exception) -> None:
        if self._done:
            return
        if isinstance(results, Exception):
            self._fail("gai", getattr(results, "errno", 0) or 0, str(results))
            return
        check = self.check_ip
        if check is not None:
            results = [r for r in results if check(str(r[4][0]))]
            if not results:
                self._fail("access", errno.EACCES, "address not allowed")
                return
        self._addresses = list(results)
        self._try_next()

    def _try_next(self) -> None:
        if not self._addresses:
            self._fail(*self._last_error)
            return
        family, kind, proto, _, address = self._addresses.pop(0)
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as error:  # e.g. no IPv6 in this kernel
            self._last_error = ("socket", error.errno or 0, str(error))
            self._try_next()
            return
        sock.setblocking(False)
        self.sock = sock
        try:
            code = sock.connect_ex(address)
        except OSError as error:  # e.g. a UNIX path that is too long
            code = error.errno or errno.EINVAL
        # EAGAIN from a UNIX socket means a full backlog, not "in progress".
        connecting = _UNIX_CONNECTING if family == socket.AF_UNIX else _INET_CONNECTING
        if code == 0 or code in connecting:
            self.loop.add_writer(sock.fileno(), lambda: self._on_writable(sock, address))
        else:
            sock.close()
            self._last_error = ("socket", code, os.strerror(code))
            self._try_next()

    def _on_writable(self, sock: socket.socket, address: Any) -> None:
        self.loop.remove_writer(sock.fileno())
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            sock.close()
            self._last_error = ("socket", code, os.strerror(code))
            self._try_next()
            return
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        _sockets.tune(sock)
        self._connected(sock, address)

    def _connected(self, sock: socket.socket, address: Any) -> None:
        """Wrap the connected socket (TLS clients override this to shake hands)."""
        self._done = True
        self.emit("connect", self.connection_class(sock, address, self.loop))

    def _on_timeout(self) -> None:
        self._timer = None
        sock = self.sock
        if sock is not None and sock.fileno() >= 0:
            self.loop._set_handlers(sock.fileno(), None, None)
            sock.close()
        self._addresses = []
        self._fail("socket", errno.ETIMEDOUT, "Connection timed out")

    def _fail(self, kind: str, code: int, message: str) -> None:
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.delete()
            self._timer = None
        self.emit("connect_error", kind, code, message)
