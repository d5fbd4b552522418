"""TLS connections, servers and clients on the loop (stdlib :mod:`ssl`).

Theory of operation.  A TLS connection is a :class:`thor.tcp.TcpConnection`
whose socket is an :class:`ssl.SSLSocket`; only the byte-moving hooks change,
so events, write-side flow control (``pause`` by bytes buffered) and closing
behave exactly as over TCP.

1. *Handshake.*  :class:`TlsClient` (after TCP connects) and :class:`TlsServer`
   (after ``accept``) wrap the socket with ``do_handshake_on_connect=False``
   and call ``do_handshake()`` whenever the socket is ready:
   ``SSLWantReadError`` waits for readable, ``SSLWantWriteError`` for
   writable.  A timer bounds the whole handshake (``handshake_timeout``).
   The connection is emitted only once the handshake is done.
2. *Reading.*  One readable event reads TLS records until OpenSSL wants more
   input or ``read_bufsize`` bytes are collected.  Decrypted bytes can stay
   inside OpenSSL while the socket is quiet (``pending()``), so a read that
   stops early schedules another one instead of waiting for a readable event
   that may never come.  ``close_notify`` (``SSLZeroReturnError``) and a TCP
   EOF without it (``SSLEOFError``, a "ragged" EOF that HTTP framing makes
   harmless) both mean EOF; any other ``SSLError`` means the connection is lost.
3. *Writing.*  ``SSLSocket`` has no ``sendmsg``: buffers are joined, at most
   ``_MAX_WRITE`` bytes at a time.  OpenSSL needs a write that failed with
   ``SSLWantWriteError`` to be retried with the same leading bytes; TCP's
   buffer only ever loses bytes from its front when a send succeeds and
   grows at the back, and a retry offers ``min(buffered, _MAX_WRITE)``
   bytes, never fewer than the failed attempt, so that holds.
4. *Closing.*  Before its FIN a connection sends ``close_notify``
   (RFC 8446 §6.1), best effort and without blocking.  Python can only send
   it through ``SSL_shutdown`` called twice, and the second call reads: if
   input is already waiting, it would be consumed and lost.  So a half-close
   (``shutdown_write()``) waits until the input is drained; ``close()``
   discards input anyway and sends at once.  ``abort()`` sends nothing.

Verification is on by default in the client (``ssl.create_default_context``:
system CAs, hostname checked).  Turning it off is explicit:
``client_context(verify=False)``.  In TLS 1.3 the client finishes its
handshake before the server has checked the client certificate, so a refused
client certificate shows up in the client as a lost connection (``close``,
then ``disconnect``), not as ``connect_error``.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import ssl
import weakref
from collections.abc import Callable
from typing import Any

import thor.loop
from thor.tcp import ConnState, TcpClient, TcpConnection, TcpServer

__all__ = [
    "TlsClient",
    "TlsConnection",
    "TlsServer",
    "client_context",
    "server_context",
]

log = logging.getLogger("thor.tls")

# The most plaintext handed to one SSL write: 16 TLS records of 16 KiB
# (RFC 8446 §5.1), small enough that joining buffers copies little.
_MAX_WRITE = 256 * 1024


# One read buffer per loop (a loop runs on one thread), shared by its
# connections: records are decrypted into it and copied out once, instead of
# allocating ``read_bufsize`` bytes for every 16 KiB record.
_scratch_buffers: weakref.WeakKeyDictionary[thor.loop.Loop, memoryview] = (
    weakref.WeakKeyDictionary()
)


def _scratch_buffer(loop: thor.loop.Loop, size: int) -> memoryview:
    buffer = _scratch_buffers.get(loop)
    if buffer is None or len(buffer) < size:
        buffer = _scratch_buffers[loop] = memoryview(bytearray(size))
    return buffer


# ---------------------------------------------------------------- contexts


def server_context(
    certfile: str,
    keyfile: str | None = None,
    *,
    cafile: str | None = None,
    require_client_cert: bool = False,
    alpn: list[str] | None = None,
    password: str | None = None,
) -> ssl.SSLContext:
    """A server context: TLS 1.2+, no renegotiation, the given certificate chain.

    With ``cafile``, client certificates signed by it are requested (and
    verified when sent); with ``require_client_cert`` as well, a client
    without one is refused.  ``alpn`` lists the protocols offered, in order
    of preference (e.g. ``["h2", "http/1.1"]``).  ``password`` decrypts an
    encrypted private key.
    """
    if require_client_cert and cafile is None:
        raise ValueError("require_client_cert needs a cafile to verify clients with")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Renegotiation (TLS 1.2) lets a peer make a read need a write; refuse it.
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(certfile, keyfile, password)
    if cafile is not None:
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def client_context(
    *,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    verify: bool = True,
    alpn: list[str] | None = None,
) -> ssl.SSLContext:
    """A client context that verifies the server (system CAs, or ``cafile``).

    ``verify=False`` turns off certificate *and* hostname checks: anyone on
    the path can then impersonate the server.  Use it for tests only.
    ``certfile``/``keyfile`` are a client certificate (mutual TLS).
    """
    context = ssl.create_default_context(cafile=cafile)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


_default_context: ssl.SSLContext | None = None


def _shared_default_context() -> ssl.SSLContext:
    # Loading the system CAs costs milliseconds: do it once.
    global _default_context
    if _default_context is None:
        _default_context = client_context()
    return _default_context


# --------------------------------------------------------------- handshake


class _Handshake:
    """Drives ``do_handshake()`` on the loop until it is done, fails or times out.

    ``done(None)`` on success, ``done(error)`` otherwise; called once, after the
    socket's handlers are removed.  The socket is not closed here.
    """

    def __init__(
        self,
        loop: thor.loop.Loop,
        sock: ssl.SSLSocket,
        timeout: float,
        done: Callable[[BaseException | None], None],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.done: Callable[[BaseException | None], None] | None = done
        self.timer = loop.schedule(timeout, self._on_timeout)
        loop.call_soon(self.step)

    def step(self) -> None:
        if self.done is None:
            return
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.remove_writer(self.fd)
            self.loop.add_reader(self.fd, self.step)
        except ssl.SSLWantWriteError:
            self.loop.remove_reader(self.fd)
            self.loop.add_writer(self.fd, self.step)
        except (OSError, ValueError) as error:  # SSLError is an OSError
            self._finish(error)
        else:
            self._finish(None)

    def _on_timeout(self) -> None:
        self._finish(TimeoutError("TLS handshake timed out"))

    def cancel(self) -> None:
        """Stop without calling ``done``."""
        self.done = None
        self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        self.timer.delete()
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        done, self.done = self.done, None
        if done is not None:
            done(error)


def _describe(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    return str(error) or type(error).__name__


# -------------------------------------------------------------- connection


class TlsConnection(TcpConnection):
    """A :class:`~thor.tcp.TcpConnection` over TLS: same events and methods.

    Extra attributes: ``ssl_object`` (the :class:`ssl.SSLSocket`: ``version()``,
    ``cipher()``, ``getpeercert(binary_form=True)``...), ``alpn_protocol``
    (``str`` or ``None``) and ``peer_certificate`` (the verified peer
    certificate as :meth:`ssl.SSLSocket.getpeercert` decodes it, or ``None``
    when the peer sent none or it was not verified).
    """

    can_sendfile = False  # the bytes are encrypted on their way: write them

    def __init__(self, sock: ssl.SSLSocket, address: Any, loop: thor.loop.Loop | None = None):
        self.ssl_object = sock
        self.alpn_protocol: str | None = sock.selected_alpn_protocol()
        self.peer_certificate: dict[str, Any] | None = dict(sock.getpeercert() or {}) or None
        self._tls_eof = False  # close_notify or EOF seen, not yet reported
        self._tls_error: OSError | None = None  # seen after some data, not yet reported
        self._eof_deferred = False  # a half-close waits for the input to drain
        self._close_notify_sent = False
        super().__init__(sock, address, loop)
        self._read_soon()  # bytes may have come with the handshake's last flight

    # ------------------------------------------------------------ reading

    def _recv(self, size: int) -> bytes:
        if self._tls_error is not None:
            raise self._tls_error
        if self._tls_eof:
            return b""
        scratch = _scratch_buffer(self._loop, size)
        got = 0
        sock = self.ssl_object
        while got < size:  # each pass gets at least one byte or leaves
            try:
                count = sock.recv_into(scratch[got:size], size - got)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                if self._eof_deferred and not sock.pending():
                    self._send_eof_now()  # the input is drained: half-close now
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                count = 0
            except OSError as error:  # a bad record, a reset...
                if not got:
                    raise
                self._tls_error = error  # deliver what came before it first
                break
            if not count:
                self._tls_eof = True
                break
            got += count
        if got:
            if self._tls_eof or self._tls_error is not None or got >= size:
                self._read_soon()  # report the EOF, the error, or what OpenSSL still holds
            return scratch[:got].tobytes()
        if self._tls_eof:
            return b""
        raise BlockingIOError

    def _read_soon(self) -> None:
        self._loop.call_soon(self._read_if_ready)

    def _read_if_ready(self) -> None:
        if self.state is ConnState.CLOSED or self._peer_eof:
            return
        if self._read_paused and self.state is ConnState.OPEN:
            return  # pause(False) calls us again
        if self._tls_eof or self._tls_error is not None or self.ssl_object.pending():
            self._on_readable()

    def pause(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading from the peer."""
        super().pause(paused)
        if not paused:
            self._read_soon()

    # ------------------------------------------------------------ writing

    def _send(self, data: bytes | memoryview) -> int:
        try:
            return self.ssl_object.send(memoryview(data)[:_MAX_WRITE])
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError) as error:
            raise BlockingIOError from error

    def _send_many(self, buffers: list[bytes | memoryview]) -> int:
        parts: list[bytes | memoryview] = []
        total = 0
        for buffer in buffers:
            parts.append(buffer)
            total += len(buffer)
            if total >= _MAX_WRITE:
                break
        return self._send(b"".join(parts))

    # ------------------------------------------------------------ closing
    #
    # thor.tcp sends FIN with ``self.socket.shutdown(SHUT_WR)``; on an
    # SSLSocket that also drops the SSL object (later reads would return raw
    # records), so the two methods that do it are overridden here to send
    # close_notify first and FIN through the plain socket.

    def close(self) -> None:
        """Flush, send close_notify and FIN, then close (see TcpConnection.close)."""
        if self.state is ConnState.OPEN and self._peer_eof and not self._buffer:
            self._send_close_notify()  # the peer closed first: answer its close_notify
        super().close()

    def _shutdown_socket(self) -> None:
        if not self._peer_eof and self._input_waiting():
            self._eof_deferred = True  # _recv sends it once the input is drained
            return
        self._send_eof_now()

    def _send_eof_now(self) -> None:
        self._eof_deferred = False
        try:
            self._send_eof()
        except OSError:
            pass  # as in TcpConnection: the read side will tell
        if self._peer_eof and self.state is ConnState.OPEN:
            self._destroy()

    def _linger(self) -> None:
        if self._peer_eof:
            # The peer has closed already: no FIN to wait for, but close_notify still goes
            # first (RFC 8446 §6.1) before the socket is destroyed.
            self._send_close_notify()
        super()._linger()  # its FIN goes through _send_eof below

    def _send_eof(self) -> None:
        """close_notify, then FIN.  Raises OSError if the FIN cannot be sent."""
        self._send_close_notify()
        if self.socket.fileno() >= 0:
            socket.socket.shutdown(self.socket, socket.SHUT_WR)

    def _send_close_notify(self) -> None:
        if self._close_notify_sent or self.socket.fileno() < 0:
            return
        self._close_notify_sent = True
        try:
            self.ssl_object.unwrap()
        except (OSError, ValueError):
            # SSLWantReadError: sent, the peer's has not come (the usual case).
            # Anything else: best effort; the FIN still follows.
            pass

    def _input_waiting(self) -> bool:
        if self.socket.fileno() < 0:
            return False
        if self.ssl_object.pending():
            return True
        readable, _, _ = select.select([self._fd], [], [], 0)
        return bool(readable)


# ------------------------------------------------------------------ server


class TlsServer(TcpServer):
    """A :class:`~thor.tcp.TcpServer` that shakes hands before ``connect``.

    ``context`` is a server :class:`ssl.SSLContext` (see :func:`server_context`;
    set ``context.sni_callback`` to see or switch on the name a client asks
    for).  Handshakes that fail or take longer than ``handshake_timeout``
    seconds are logged at debug level and closed.  ``shutdown`` and
    ``graceful_shutdown`` also abort the handshakes still in progress.
    """

    connection_class: type[TcpConnection] = TlsConnection

    def __init__(
        self,
        host: str | bytes | None,
        port: int,
        context: ssl.SSLContext,
        sock: socket.socket | None = None,
        loop: thor.loop.Loop | None = None,
        backlog: int = 1024,
        *,
        path: str | None = None,
        fd: int | None = None,
        reuse_port: bool = False,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.context = context
        self.handshake_timeout = handshake_timeout
        self._handshakes: set[_Handshake] = set()
        super().__init__(host, port, sock, loop, backlog, path=path, fd=fd, reuse_port=reuse_port)

    def _accepted(self, sock: socket.socket, address: Any) -> None:
        try:
            tls_sock = self.context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as error:
            log.debug("TLS setup for %r failed: %s", address, error)
            sock.close()
            return

        def done(error: BaseException | None) -> None:
            self._handshakes.discard(handshake)
            if error is not None:
                log.debug("TLS handshake with %r failed: %s", address, _describe(error))
                tls_sock.close()
                return
            self._add_connection(self.connection_class(tls_sock, address, self.loop))

        handshake = _Handshake(self.loop, tls_sock, self.handshake_timeout, done)
        self._handshakes.add(handshake)

    def shutdown(self) -> None:
        """As :meth:`TcpServer.shutdown`; unfinished handshakes are aborted."""
        super().shutdown()
        self._abort_handshakes()

    def graceful_shutdown(self, timeout: float | None = None) -> None:
        """As :meth:`TcpServer.graceful_shutdown`; unfinished handshakes are aborted."""
        super().graceful_shutdown(timeout)
        self._abort_handshakes()

    def _abort_handshakes(self) -> None:
        # A client still shaking hands has no connection yet: it sees a reset.
        for handshake in list(self._handshakes):
            handshake.cancel()
            handshake.sock.close()
        self._handshakes.clear()


# ------------------------------------------------------------------ client


class TlsClient(TcpClient):
    """A :class:`~thor.tcp.TcpClient` that shakes hands before ``connect``.

    Events: ``connect(TlsConnection)``, ``connect_error(kind, errno, message)``
    where ``kind`` is also ``"ssl"`` (errno 0) when the handshake fails or
    times out.  ``context`` defaults to a verifying one (system CAs, hostname
    checked).  ``server_hostname`` is the name sent in SNI and checked
    against the certificate; it defaults to the host given to ``connect``
    (an IP literal is checked against the certificate's IP addresses and
    sends no SNI, RFC 6066 §3).  ``alpn_protocols`` is set on the context
    (the context is shared: it changes for its other users too).
    """

    connection_class: type[TcpConnection] = TlsConnection

    def __init__(
        self,
        loop: thor.loop.Loop | None = None,
        context: ssl.SSLContext | None = None,
        *,
        server_hostname: str | None = None,
        handshake_timeout: float = 10.0,
        alpn_protocols: list[str] | None = None,
    ) -> None:
        super().__init__(loop)
        if context is None:
            context = client_context(alpn=alpn_protocols) if alpn_protocols else None
            context = context or _shared_default_context()
        elif alpn_protocols:
            context.set_alpn_protocols(alpn_protocols)
        self.context = context
        self.server_hostname = server_hostname
        self.handshake_timeout = handshake_timeout
        self._handshake: _Handshake | None = None
        self._hostname: str | None = None  # for the connection being made

    def connect(self, host: str | bytes, port: int, connect_timeout: float | None = None) -> None:
        """Connect to ``host``:``port`` and shake hands; one of the two events follows."""
        name = host.decode("idna") if isinstance(host, bytes) else host
        self._hostname = self.server_hostname or _hostname_for(name)
        super().connect(host, port, connect_timeout)

    def _connected(self, sock: socket.socket, address: Any) -> None:
        try:
            tls_sock = self.context.wrap_socket(
                sock, server_hostname=self._hostname, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as error:
            sock.close()
            self._fail("ssl", 0, _describe(error))
            return

        def done(error: BaseException | None) -> None:
            self._handshake = None
            if error is not None:
                tls_sock.close()
                self._fail("ssl", 0, _describe(error))
                return
            self._done = True
            self.emit("connect", self.connection_class(tls_sock, address, self.loop))

        self._handshake = _Handshake(self.loop, tls_sock, self.handshake_timeout, done)


def _hostname_for(host: str) -> str:
    """What to check the certificate against: the name, or the bare IP literal."""
    bare = host.strip("[]")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return host
