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

``sendfile(fd, offset, count)`` queues a piece of a file behind what is buffered; the
kernel copies it to the socket (``os.sendfile``) as the peer reads, so a file of any
size costs no memory.  It counts in the write buffer like written bytes (``pause``
and the write timeout of a server see it).  Connections whose bytes need more than a
copy (TLS) say ``can_sendfile = False``: write the file's bytes to them instead.

``close()`` flushes what is buffered, sends FIN, and keeps reading (and
discarding) until the peer's FIN or ``close_timeout``, so that unread input
does not turn into a reset that destroys the last response in flight
(RFC 9112 §9.6, "lingering close").  ``abort()`` closes at once.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import socket
import struct
import sys
from collections import deque
from typing import Any

import thor.loop
from thor.events import EventEmitter

__all__ = ["ConnState", "FileSegment", "TcpConnection"]

log = logging.getLogger("thor.tcp")

# sendmsg takes at most IOV_MAX buffers; stay well below it.
_MAX_IOV = 64


class FileSegment:
    """A piece of a file waiting in a write buffer; owns its (duplicated) descriptor."""

    __slots__ = ("count", "fd", "offset")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count

    def __len__(self) -> int:
        return self.count


class ConnState(enum.Enum):
    """The life of a connection (the read and write halves close separately)."""

    OPEN = "open"  # bytes move both ways (a half may already be shut)
    FLUSHING = "flushing"  # close() was called; sending what is buffered
    LINGERING = "lingering"  # FIN sent after close(); discarding input until EOF
    CLOSED = "closed"  # the socket is closed


# Module constants: in CPython 3.11 reading ``ConnState.OPEN`` costs ~8 times a global.
_OPEN = ConnState.OPEN
_FLUSHING = ConnState.FLUSHING
_LINGERING = ConnState.LINGERING
_CLOSED = ConnState.CLOSED

# The write queue of every connection with nothing queued. Never appended to: a write that
# the kernel does not take whole gives its connection a deque of its own first.
_NO_QUEUE: deque[bytes | memoryview | FileSegment] = deque()
# SO_LINGER on, 0 seconds: close() sends RST and discards the send queue.
_LINGER_RESET = struct.pack("ii", 1, 0)

# Linux's SIOCOUTQ (= TIOCOUTQ): the bytes in a TCP socket's send queue that the peer has
# not acknowledged, i.e. not taken. Elsewhere None: nothing is known of the kernel's queue.
_SIOCOUTQ: int | None = None
if sys.platform.startswith("linux"):  # pragma: no branch
    import fcntl
    import termios

    _SIOCOUTQ = termios.TIOCOUTQ
    _ioctl = fcntl.ioctl


class TcpConnection(EventEmitter):
    """A connected stream socket.  See the module docstring for its events."""

    # recv(n) allocates n bytes, then shrinks them: above glibc's 128 KiB mmap
    # threshold that is an mmap/munmap per read (3x the CPU: docs/tcp.md).
    read_bufsize = 120 * 1024
    write_high_water = 256 * 1024
    write_low_water = 64 * 1024
    close_timeout = 2.0
    can_sendfile = True  # sendfile() copies in the kernel; False where bytes must be transformed

    def __init__(self, sock: socket.socket, address: Any, loop: thor.loop.Loop | None = None):
        super().__init__()
        self.socket = sock
        self.address = address  # the peer's address
        self._loop = loop or thor.loop.default()
        sock.setblocking(False)  # an adopted socket may still be blocking
        self._fd = sock.fileno()
        self.state = _OPEN
        # The write queue: the shared empty one until a write is not taken whole (an idle
        # connection then holds no deque of its own: 760 bytes each, issue 16).
        self._buffer: deque[bytes | memoryview | FileSegment] = _NO_QUEUE
        self._buffered = 0
        self._segments = 0  # FileSegments in _buffer: while 0, the plain bytes path
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
        return self.state is _OPEN and not self._write_shut

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self._buffered

    def unsent(self) -> int:
        """Bytes the kernel has taken but the peer not yet acknowledged (0 where unknown).

        A send buffer that grows to megabytes (loopback) takes a whole large response at
        once: ``write_buffer_size`` is then 0 while the client has read next to nothing.
        One system call: for rate checks on a timer, not for every write."""
        if _SIOCOUTQ is None or self.state is _CLOSED:
            return 0
        try:
            return int.from_bytes(_ioctl(self._fd, _SIOCOUTQ, b"\0\0\0\0"), sys.byteorder)
        except OSError:
            return 0

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
        if self.state is _OPEN and not self._peer_eof:
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
        elif self.state is _OPEN:
            self.emit("data", data)

    def _on_eof(self) -> None:
        self._peer_eof = True
        self._loop.remove_reader(self._fd)
        if self.state is _OPEN:
            self.emit("close")
            if self._write_shut and not self._buffer and self.state is _OPEN:
                self._destroy()
        elif self.state is _LINGERING:
            self._destroy()

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes | memoryview) -> None:
        """Send ``data``, buffering what the kernel does not take now.

        Data written after the connection closed is dropped: its ``close`` or
        ``disconnect`` event has already said so.
        """
        if self.state is not _OPEN or self._write_shut or not data:
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
            if self._buffer is _NO_QUEUE:
                self._buffer = deque()
        self._buffer.append(data)
        self._buffered += len(data)
        if not self._write_paused and self._buffered > self.write_high_water:
            self._write_paused = True
            self.emit("pause", True)

    def write_many(self, buffers: list[bytes | memoryview]) -> None:
        """``write`` the buffers in order, as one gathering ``sendmsg`` when nothing waits: a
        frame's header and its large payload go out without being joined (copied) first."""
        if self.state is not _OPEN or self._write_shut:
            return
        if self._buffer:  # behind what waits: queued as they are
            for data in buffers:
                self.write(data)
            return
        if len(buffers) > _MAX_IOV:
            self.write(b"".join(buffers))
            return
        try:
            sent = self._send_many(buffers)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as error:
            self._lost(error, deferred=True)  # as write() does
            return
        for index, data in enumerate(buffers):
            if sent < len(data):  # the rest waits, in order, from this piece on
                self._loop.add_writer(self._fd, self._on_writable)
                queue: deque[bytes | memoryview | FileSegment] = deque(buffers[index:])
                self._buffer = queue
                if sent:
                    queue[0] = memoryview(data)[sent:]
                self._buffered += sum(map(len, queue))
                if not self._write_paused and self._buffered > self.write_high_water:
                    self._write_paused = True
                    self.emit("pause", True)
                return
            sent -= len(data)

    def sendfile(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of the file ``fd`` from ``offset``, after what is buffered.

        The connection keeps a duplicate of ``fd``: the caller may close its own at once.
        If the file turns out shorter than ``offset + count``, the connection is lost (a
        length-delimited message cannot be completed).  Dropped after the connection closed,
        as ``write`` is.
        """
        if self.state is not _OPEN or self._write_shut or count <= 0:
            return
        if not self.can_sendfile:
            raise NotImplementedError(f"{type(self).__name__} cannot sendfile()")
        segment = FileSegment(fd, offset, count)
        if not self._buffer:
            try:
                sent = self._send_segment(segment)  # most of a file may go at once
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                self._lost(error, deferred=True)  # as write() does
                return
            if sent == count:
                return
            segment.offset += sent
            segment.count = count = count - sent
            self._loop.add_writer(self._fd, self._on_writable)
            if self._buffer is _NO_QUEUE:
                self._buffer = deque()
        segment.fd = os.dup(fd)
        self._buffer.append(segment)
        self._segments += 1
        self._buffered += count
        if not self._write_paused and self._buffered > self.write_high_water:
            self._write_paused = True
            self.emit("pause", True)

    def _send_segment(self, segment: FileSegment) -> int:
        """Send from the file at the head of the buffer; 0 when the file fell short."""
        sent = os.sendfile(self._fd, segment.fd, segment.offset, segment.count)
        if not sent:
            raise OSError(errno.EIO, "the file is shorter than the length being sent")
        return sent

    def _send(self, data: bytes | memoryview) -> int:
        return self.socket.send(data)

    def _send_many(self, buffers: list[bytes | memoryview]) -> int:
        return self.socket.sendmsg(buffers)

    def _on_writable(self) -> None:
        buffer = self._buffer
        try:
            if self._segments:
                sent = self._send_with_files(buffer)
            elif len(buffer) == 1:
                sent = self._send(buffer[0])  # type: ignore[arg-type]
            else:
                items = [buffer[i] for i in range(min(len(buffer), _MAX_IOV))]
                sent = self._send_many(items)  # type: ignore[arg-type]
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
                if first.__class__ is FileSegment:
                    self._segments -= 1
                    os.close(first.fd)
            elif first.__class__ is FileSegment:
                first.offset += sent
                first.count -= sent
                sent = 0
            else:
                buffer[0] = memoryview(first)[sent:]  # type: ignore[arg-type]
                sent = 0
        if not buffer:
            self._buffer = _NO_QUEUE  # drained: the connection need not keep a queue
            self._loop.remove_writer(self._fd)
            self._on_drained()
            if self.state is _CLOSED:
                return
        if self._write_paused and self._buffered <= self.write_low_water:
            self._write_paused = False
            self.emit("pause", False)

    def _send_with_files(self, buffer: deque[bytes | memoryview | FileSegment]) -> int:
        """One send from a buffer holding file segments: the bytes before the first one, or
        the file at the head."""
        first = buffer[0]
        if first.__class__ is FileSegment:
            return self._send_segment(first)
        pieces: list[bytes | memoryview] = []
        for item in buffer:
            if item.__class__ is FileSegment or len(pieces) == _MAX_IOV:
                break
            pieces.append(item)  # type: ignore[arg-type]
        return self._send(pieces[0]) if len(pieces) == 1 else self._send_many(pieces)

    def _on_drained(self) -> None:
        if self.state is _FLUSHING:
            self._linger()
        elif self._write_shut:
            self._shutdown_socket()

    # ------------------------------------------------------------------ closing

    def shutdown_write(self) -> None:
        """Half-close: send FIN once the buffer is flushed, and keep reading."""
        if self.state is not _OPEN or self._write_shut:
            return
        self._write_shut = True
        if not self._buffer:
            self._shutdown_socket()

    def _shutdown_socket(self) -> None:
        try:
            self._send_eof()
        except OSError:
            pass
        if self._peer_eof and self.state is _OPEN:
            self._destroy()

    def close(self) -> None:
        """Flush, send FIN, then close once the peer has closed too (or after a while)."""
        if self.state is not _OPEN:
            return
        if self._peer_eof and not self._buffer:
            self._destroy()
            return
        self.state = _FLUSHING
        if self._read_paused and not self._peer_eof:
            self._loop.add_reader(self._fd, self._on_readable)  # to discard and see EOF
        if not self._buffer:
            self._linger()

    def _linger(self) -> None:
        if self._peer_eof:
            self._destroy()
            return
        self.state = _LINGERING
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
        if self.state is not _CLOSED:
            self._destroy()

    def reset(self) -> None:
        """Close now with a reset (RFC 9293 §3.10.7.1, ABORT): unlike ``abort``, what the
        kernel has taken but not delivered is dropped too, instead of trickling on to a
        client that reads slowly (and holding kernel memory meanwhile)."""
        if self.state is _CLOSED:
            return
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self._destroy()

    def _lost(self, error: OSError, deferred: bool = False) -> None:
        if self.state is _CLOSED:
            return
        log.debug("connection %r lost: %s", self.address, error)
        emit_close = self.state is _OPEN and not self._peer_eof
        self._destroy(emit=False)
        if deferred:
            self._loop.call_soon(self._emit_lost, emit_close)
        else:
            self._emit_lost(emit_close)

    def _emit_lost(self, emit_close: bool) -> None:
        if emit_close:
            self.emit("close")
        self._emit_disconnect()

    def _emit_disconnect(self) -> None:
        """The last event: then the listeners go.  They are bound methods and closures of
        the connection's owner, which holds the connection: left in place, every closed
        connection would sit in a reference cycle that only the garbage collector frees
        (issue 16, finding 4: under a fault mix each reset or cut connection did, and the
        collector's piles grew the heap)."""
        self.emit("disconnect")
        self.forget_listeners()

    def _destroy(self, emit: bool = True) -> None:
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        if self._linger_timer is not None:
            self._linger_timer.delete()
            self._linger_timer = None
        self._loop._set_handlers(self._fd, None, None)
        if self._segments:
            for item in self._buffer:
                if item.__class__ is FileSegment:
                    os.close(item.fd)
            self._segments = 0
        self._buffer = _NO_QUEUE
        self._buffered = 0
        self.socket.close()
        if emit:
            self._emit_disconnect()
