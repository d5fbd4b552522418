"""A TCP client on the loop: resolves a name with :mod:`thor.dns`, tries each address.

Events: ``connect(conn)`` or ``connect_error(kind, errno, message)``, once per
``connect()`` call.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import thor._sockets as _sockets
import thor.dns
import thor.loop
from thor.events import EventEmitter
from thor.tcp_connection import TcpConnection

__all__ = ["TcpClient"]

log = logging.getLogger("thor.tcp")

# connect_ex() results that mean "wait for writability".
_INET_CONNECTING = frozenset({errno.EINPROGRESS, errno.EAGAIN})
_UNIX_CONNECTING = frozenset({errno.EINPROGRESS})


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
        self.loop = loop or thor.loop.default()
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
