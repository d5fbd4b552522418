"""Static files: a folder served under a prefix (``--static /static=./folder``).

Theory of operation.  :class:`StaticHandler` is mounted like any other handler; the
router has matched the prefix and decoded the rest of the path (``path_info``).  Once
the request is complete it:

1. refuses anything but GET and HEAD (405 with ``Allow``);
2. refuses unsafe paths with 404 (:func:`~thor_gateway.static_rules.safe_relative`:
   ``..``, encoded separators, NUL, backslash, hidden segments), and paths whose real
   location (symlinks resolved) is outside the folder unless ``follow_symlinks``;
3. picks the representation: ``FILE.gz`` when it exists and ``Accept-Encoding``
   prefers gzip (with ``Vary: Accept-Encoding`` whenever the sibling exists);
4. evaluates the conditional fields (RFC 9110 §13.2.2): 304, 412, or go on;
5. evaluates ``Range`` (RFC 9110 §14): 206 with one part, ``multipart/byteranges``
   with several, 416 when none is satisfiable, the whole file when ``If-Range`` failed;
6. sends the body.  A small body is read at once and sent with the head.  A larger one
   goes by ``os.sendfile`` (the exchange's ``response_file``: the kernel copies the file
   to the socket as the client reads, nothing of it in memory); where that cannot be
   (TLS), it is read with ``os.pread`` in 64 KiB chunks as the client drains: at most
   :data:`TURN_BUDGET` bytes per loop iteration, and none while the exchange is paused
   (its ``pause`` event), so a slow client costs the write buffer's high-water mark,
   never the file's size.

Directories are 404, unless ``index`` is set: then ``dir/`` serves ``dir/index.html``
and ``dir`` redirects (301) to ``dir/`` with a relative ``Location``, which holds behind
any prefix or ``--root-path``.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections import deque
from typing import Any

from thor.memo import Memo
from thor_gateway.config_values import ConfigError, StaticRoute
from thor_gateway.errors import GatewayError, respond, when_complete
from thor_gateway.request import Done, Request
from thor_gateway.static_rules import (
    Precondition,
    RangeResult,
    content_type,
    entity_tag,
    evaluate_preconditions,
    gzip_accepted,
    http_date,
    parse_range,
    raw_path_refused,
    safe_relative,
)

__all__ = [
    "FileNotFoundHereError",
    "PreconditionFailedError",
    "RangeNotSatisfiableError",
    "StaticHandler",
    "StaticMethodError",
    "static_handler",
]

log = logging.getLogger("thor_gateway.static")

CHUNK = 64 * 1024  # one pread
SMALL = 64 * 1024  # bodies up to this size go out with the head, in one write
TURN_BUDGET = 1024 * 1024  # bytes read per loop iteration, so other connections get a turn
_ALLOW = [(b"Allow", b"GET, HEAD")]
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_PROC_FDS = os.path.isdir("/proc/self/fd")
_DATES: Memo[int, bytes] = Memo(1024)


class FileNotFoundHereError(GatewayError):
    """No servable file at this path (missing, refused, a directory)."""

    desc = "Not Found"
    status = 404


class StaticMethodError(GatewayError):
    """Static files answer GET and HEAD only (RFC 9110 §15.5.6: 405 with Allow)."""

    desc = "Method Not Allowed"
    status = 405


class PreconditionFailedError(GatewayError):
    """If-Match or If-Unmodified-Since failed (RFC 9110 §13.1.1, §13.1.4)."""

    desc = "Precondition Failed"
    status = 412


class RangeNotSatisfiableError(GatewayError):
    """No range of the Range field overlaps the file (RFC 9110 §15.5.17)."""

    desc = "Range Not Satisfiable"
    status = 416


class StaticHandler:
    """Serve the files under ``folder``; see the module docstring."""

    def __init__(
        self,
        folder: str,
        *,
        cache_control: str = "",
        follow_symlinks: bool = False,
        index: bool = False,
        precompressed: bool = True,
        sendfile: bool = True,
    ) -> None:
        self.root = os.fsencode(os.path.realpath(folder))
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"{folder!r} is not a folder")
        self.root_slash = self.root.rstrip(b"/") + b"/"
        self.cache_control = cache_control.encode("latin-1")
        self.follow_symlinks = follow_symlinks
        self.index = index
        self.precompressed = precompressed
        self.sendfile = sendfile  # False: always read in chunks (tests, measurements)

    def startup(self, done: Done) -> None:
        done(None)

    def shutdown(self, done: Done) -> None:
        done(None)

    def handle(self, exchange: Any, request: Request) -> None:
        method = request.method
        if method != b"GET" and method != b"HEAD":
            respond(exchange, StaticMethodError(), extra=_ALLOW)
            return
        when_complete(exchange, lambda: self._serve(exchange, request))

    # ------------------------------------------------------------ choosing

    def _serve(self, exchange: Any, request: Request) -> None:
        relative = None if raw_path_refused(request.raw_path) else safe_relative(request.path_info)
        if relative is None:
            respond(exchange, FileNotFoundHereError())
            return
        name, trailing = relative
        path = self.root_slash + name if name else self.root
        opened = self._open(path)
        if opened is not None and stat.S_ISDIR(opened[1].st_mode):
            os.close(opened[0])
            opened = None
            if self.index:
                if not trailing:
                    # Relative to the request URL: right behind any prefix or front proxy.
                    last = (request.script_name + request.path_info).rsplit(b"/", 1)[-1]
                    self._redirect(exchange, last + b"/")
                    return
                path += b"/index.html" if name else b"index.html"
                opened = self._open(path)
                trailing = False
        if opened is None or trailing or not stat.S_ISREG(opened[1].st_mode):
            if opened is not None:
                os.close(opened[0])
            respond(exchange, FileNotFoundHereError())
            return
        fd, info = opened
        headers = [(b"Content-Type", content_type(path))]
        gzipped = False
        if self.precompressed and not path.endswith(b".gz"):
            gz = self._open(path + b".gz")
            if gz is not None:
                headers.append((b"Vary", b"Accept-Encoding"))
                if stat.S_ISREG(gz[1].st_mode) and gzip_accepted(request.headers):
                    os.close(fd)
                    fd, info = gz
                    headers.append((b"Content-Encoding", b"gzip"))
                    gzipped = True
                else:
                    os.close(gz[0])
        try:
            self._send(exchange, request, fd, info, headers, gzipped)
        except BaseException:
            os.close(fd)
            raise

    def _open(self, path: bytes) -> tuple[int, os.stat_result] | None:
        """(descriptor, its stat) of a file inside the folder, or None.

        The file is opened first and its real location asked of the descriptor
        (``/proc/self/fd``, one readlink, where ``os.path.realpath`` costs an lstat per
        path segment), so what is checked is what was opened.  O_NONBLOCK: opening a
        FIFO someone left in the folder must not block the loop.
        """
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:
            return None
        try:
            if not self.follow_symlinks:
                real = _real_path(fd, path)
                if not (real.startswith(self.root_slash) or real == self.root):
                    os.close(fd)
                    return None
            return fd, os.fstat(fd)
        except OSError:
            os.close(fd)
            return None

    def _redirect(self, exchange: Any, location: bytes) -> None:
        exchange.respond(
            301,
            "Moved Permanently",
            [(b"Location", location), (b"Content-Length", b"0")],
        )

    # ------------------------------------------------------------ answering

    def _send(
        self,
        exchange: Any,
        request: Request,
        fd: int,
        info: os.stat_result,
        headers: list[tuple[bytes, bytes]],
        gzipped: bool,
    ) -> None:
        """Answer from an open regular file (``fd`` is closed here or by the sender)."""
        etag = entity_tag(info.st_mtime_ns, info.st_size, b"gz" if gzipped else b"")
        mtime = int(info.st_mtime)
        modified = _DATES.get(mtime)
        if modified is None:
            modified = http_date(mtime)
            _DATES.put(mtime, modified)
        validators = [(b"ETag", etag), (b"Last-Modified", modified)]
        if self.cache_control:
            validators.append((b"Cache-Control", self.cache_control))
        method = request.method
        decision = evaluate_preconditions(method, request.headers, etag, mtime)
        if decision is Precondition.NOT_MODIFIED:
            os.close(fd)
            # §15.4.5: the fields a 200 would carry that caches use, and no body.
            vary = [h for h in headers if h[0] == b"Vary"]
            exchange.respond(304, "Not Modified", validators + vary)
            return
        if decision is Precondition.FAILED:
            os.close(fd)
            respond(exchange, PreconditionFailedError())
            return
        headers += validators
        headers.append((b"Accept-Ranges", b"bytes"))
        length = info.st_size
        ranges: list[tuple[int, int]] | RangeResult = RangeResult.IGNORE
        if method == b"GET" and decision is Precondition.PROCEED:
            for field_name, value in request.headers:
                if len(field_name) == 5 and field_name.lower() == b"range":
                    ranges = parse_range(value, length)
                    break
        if ranges is RangeResult.UNSATISFIABLE:
            os.close(fd)
            respond(
                exchange,
                RangeNotSatisfiableError(),
                extra=[(b"Content-Range", b"bytes */%d" % length)],
            )
            return
        pieces: list[bytes | tuple[int, int]]
        if ranges is RangeResult.IGNORE:
            status, phrase = 200, "OK"
            pieces = [(0, length)]
            size = length
        elif len(ranges) == 1:
            status, phrase = 206, "Partial Content"
            first, last = ranges[0]
            headers.append((b"Content-Range", b"bytes %d-%d/%d" % (first, last, length)))
            pieces = [(first, last - first + 1)]
            size = last - first + 1
        else:
            status, phrase = 206, "Partial Content"
            pieces, size, boundary = _multipart(ranges, length, headers[0][1])
            headers[0] = (b"Content-Type", b"multipart/byteranges; boundary=" + boundary)
        headers.append((b"Content-Length", b"%d" % size))
        self._body(exchange, request, fd, (status, phrase, headers), pieces, size)

    def _body(
        self,
        exchange: Any,
        request: Request,
        fd: int,
        head: tuple[int, str, list[tuple[bytes, bytes]]],
        pieces: list[bytes | tuple[int, int]],
        size: int,
    ) -> None:
        """Send the response: at once when small, else by sendfile or a FileSender."""
        status, phrase, headers = head
        if request.method == b"HEAD" or size == 0:
            os.close(fd)
            exchange.respond(status, phrase, headers)
            return
        if size <= SMALL and len(pieces) == 1:
            offset, count = pieces[0]
            try:
                body = os.pread(fd, count, offset)
            finally:
                os.close(fd)
            if len(body) != count:  # the file shrank under us: do not send a short body
                log.warning("%r changed while being served", request.path_info)
                exchange.abort()
                return
            exchange.respond(status, phrase, headers, body)
            return
        exchange.response_start(status, phrase, headers)
        sent = _send_by_sendfile(exchange, fd, pieces) if self.sendfile else 0
        if sent == len(pieces):
            os.close(fd)  # the connection holds its own duplicate
        else:
            FileSender(exchange, fd, pieces[sent:]).pump()


def _send_by_sendfile(exchange: Any, fd: int, pieces: list[bytes | tuple[int, int]]) -> int:
    """Queue the pieces, the file's by ``os.sendfile``, and end the response; how many went.

    Fewer than all (none for a file piece) when the exchange cannot sendfile (TLS, an
    exchange without ``response_file``): the rest goes through a :class:`FileSender`.
    """
    response_file = getattr(exchange, "response_file", None)
    if response_file is None:
        return 0
    for done, piece in enumerate(pieces):
        if piece.__class__ is bytes:
            exchange.response_body(piece)
        elif not response_file(fd, *piece):
            return done
    exchange.response_done()
    return len(pieces)


def _real_path(fd: int, path: bytes) -> bytes:
    """Where the open descriptor ``fd`` (opened as ``path``) really is."""
    if _PROC_FDS:
        return os.fsencode(os.readlink(f"/proc/self/fd/{fd}"))
    return os.path.realpath(path)


def static_handler(route: StaticRoute) -> StaticHandler:
    """The handler of a ``--static`` / ``[[static]]`` route."""
    try:
        return StaticHandler(
            route.path,
            cache_control=route.cache_control,
            follow_symlinks=route.follow_symlinks,
            index=route.index,
            precompressed=route.precompressed,
        )
    except OSError as error:
        raise ConfigError("static", f"{route.prefix}={route.path}: {error}") from None


def _multipart(
    ranges: list[tuple[int, int]], length: int, part_type: bytes
) -> tuple[list[bytes | tuple[int, int]], int, bytes]:
    """The parts of a multipart/byteranges body (RFC 9110 §14.6), its size, its boundary."""
    boundary = secrets.token_hex(16).encode("ascii")
    pieces: list[bytes | tuple[int, int]] = []
    size = 0
    for first, last in ranges:
        head = b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n" % (
            boundary,
            part_type,
            first,
            last,
            length,
        )
        pieces += [head, (first, last - first + 1)]
        size += len(head) + last - first + 1
    tail = b"\r\n--%s--\r\n" % boundary
    pieces.append(tail)
    return pieces, size + len(tail), boundary


class FileSender:
    """Streams pieces of an open file (and literal bytes) to an exchange as it drains.

    Owns ``fd``: it is closed when the exchange is done, whether the response
    completed or the client went away.
    """

    __slots__ = ("exchange", "fd", "finished", "paused", "pieces", "scheduled")

    def __init__(self, exchange: Any, fd: int, pieces: list[bytes | tuple[int, int]]) -> None:
        self.exchange = exchange
        self.fd = fd
        self.pieces: deque[bytes | tuple[int, int]] = deque(pieces)
        self.paused = False
        self.scheduled = False
        self.finished = False
        exchange.on("pause", self._on_pause)
        exchange.on("done", self._on_done)

    def _on_pause(self, paused: bool) -> None:
        self.paused = paused
        if not paused and not self.scheduled:
            self.pump()

    def _on_done(self, completed: bool) -> None:
        if not self.finished:
            self.finished = True
            os.close(self.fd)

    def _resume(self) -> None:
        self.scheduled = False
        self.pump()

    def pump(self) -> None:
        """Send until paused, done, or this turn's budget is spent."""
        exchange = self.exchange
        pieces = self.pieces
        budget = TURN_BUDGET
        while pieces:
            if self.paused or self.finished:
                return
            if budget <= 0:
                # Another turn of the loop first, so other connections are served too.
                self.scheduled = True
                exchange.loop.call_soon(self._resume)
                return
            piece = pieces[0]
            if piece.__class__ is bytes:
                pieces.popleft()
                exchange.response_body(piece)
                budget -= len(piece)
                continue
            offset, count = piece
            try:
                data = os.pread(self.fd, min(CHUNK, count), offset)
            except OSError as error:
                log.warning("reading a static file failed: %s", error)
                exchange.abort()
                return
            if not data:  # the file shrank under us: cut the response, never pad it
                log.warning("a static file changed while being served")
                exchange.abort()
                return
            if len(data) == count:
                pieces.popleft()
            else:
                pieces[0] = (offset + len(data), count - len(data))
            budget -= len(data)
            exchange.response_body(data)
        if not self.finished:
            exchange.response_done()
