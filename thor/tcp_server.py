"""A TCP server on the loop: listens, accepts, and emits connections.

Accepting backs off (``accept_paused`` / ``accept_resumed``) when the process
runs out of descriptors or memory, instead of spinning on a listening socket
that stays readable.  ``stop_accepting()`` first accepts what the kernel has
already queued, so that closing the listener resets no connection.

With :attr:`TcpServer.proxy_protocol` set (a :class:`~thor.tcp.ProxyProtocol`), each
accepted socket first goes through the PROXY header read (:mod:`thor.tcp_proxy_protocol`),
which hands it on with the relayed client's address; unset, accepting is as it was.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import thor._sockets as _sockets
import thor.loop
from thor.events import EventEmitter
from thor.tcp_connection import TcpConnection

if TYPE_CHECKING:
    from thor.tcp_proxy_protocol import HeaderRead, ProxyProtocol

__all__ = ["TcpServer"]

log = logging.getLogger("thor.tcp")

# Errors of accept() that mean "out of a resource": back off instead of spinning.
_ACCEPT_BACKOFF_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EPERM}
)
# Errors of accept() about one connection that died in the queue: skip it.
_ACCEPT_SKIP_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})


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
    # Each connection starts with a PROXY header (HAProxy's protocol) from a trusted peer.
    proxy_protocol: ProxyProtocol | None = None

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
        self.loop = loop or thor.loop.default()
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
        _sockets.limit_unsent(sock)  # inherited by accepted sockets: nothing per connection
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
        self._header_reads: set[HeaderRead] = set()  # PROXY headers being read
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
        if self.proxy_protocol is None:
            self._accepted(sock, address)
        else:
            self.proxy_protocol.read_header(
                sock, address, self.loop, self._accepted, self._header_reads
            )
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
        for reading in list(self._header_reads):  # no connection yet: nothing to finish
            reading.cancel()
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
