"""Static files: a folder served under a prefix (``--static /static=./folder``).

Theory of operation.  :class:`StaticHandler` is mounted like any other handler; the
router has matched the prefix and decoded the rest of the path (``path_info``).  Once
the request is complete it:

1. refuses anything but GET and HEAD (405 with ``Allow``);
2. refuses unsafe paths with 404 (:func:`~thor_gateway.static.rules.safe_relative`:
   ``..``, encoded separators, NUL, backslash, hidden segments), and files whose real
   location (symlinks resolved) is outside the folder unless ``follow_symlinks``;
3. picks the representation: ``FILE.gz`` when it exists and ``Accept-Encoding``
   accepts gzip; every response of a route with ``precompressed`` on says
   ``Vary: Accept-Encoding`` (whether a sibling exists is not looked up for clients
   that do not take gzip, and an over-declared Vary costs a cache nothing but a key);
4. evaluates the conditional fields (RFC 9110 §13.2.2): 304, 412, or go on;
5. evaluates ``Range`` (RFC 9110 §14): 206 with one part, ``multipart/byteranges``
   with several, 416 when none is satisfiable, the whole file when ``If-Range`` failed;
6. sends the body (:mod:`thor_gateway.static.body`): a small file with the head in one
   write, a larger one by ``os.sendfile``, or (TLS) read in 64 KiB chunks as the client
   drains, so a slow client never costs the file's size in memory.

Small files (up to :data:`SMALL`) are remembered with their fields, at most
:data:`CACHED_FILES` of them per route; each request checks the remembered one with a
single ``stat`` of its path: same device, inode, modification time and size, or it is
opened afresh.  The inode is what makes this safe: a path swapped for a symlink out
of the folder leads to another inode, which takes the full checks again.

Directories are 404, unless ``index`` is set: then ``dir/`` serves ``dir/index.html``
and ``dir`` redirects (301) to ``dir/`` with a relative ``Location``, which holds behind
any prefix or ``--root-path``.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from typing import Any

from thor.memo import Memo
from thor_gateway.routing.errors import GatewayError, respond, when_complete
from thor_gateway.routing.request import Done, Request
from thor_gateway.static.body import Piece, multipart, send_pieces
from thor_gateway.static.rules import (
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
]

log = logging.getLogger("thor_gateway.static")

SMALL = 64 * 1024  # files up to this size are read whole, sent with the head, remembered
CACHED_FILES = 128  # small files remembered per route (at most 8 MiB)
_ALLOW = [(b"Allow", b"GET, HEAD")]
_VARY = (b"Vary", b"Accept-Encoding")
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


@dataclass(slots=True)
class Representation:
    """One file as sent: its identity, its fields, and its bytes when small."""

    identity: tuple[int, int, int, int]  # st_dev, st_ino, st_mtime_ns, st_size
    size: int
    mtime: int  # Last-Modified, in whole seconds
    etag: bytes
    headers: list[tuple[bytes, bytes]]  # Content-Type first; no Content-Length
    validators: list[tuple[bytes, bytes]]  # what a 304 carries (RFC 9110 §15.4.5)
    body: bytes | None  # the whole file, when small


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


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
        # Keyed by (the path asked for, gzip taken): /a.css.gz asked for by name is
        # another representation than the gzip one of /a.css.
        self.known: Memo[tuple[bytes, bool], Representation] = Memo(CACHED_FILES)

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
        gzip = self.precompressed and gzip_accepted(request.headers) and not path.endswith(b".gz")
        if not trailing:
            known = self._remembered(path, gzip)
            if known is not None:
                self._send(exchange, request, known, -1)
                return
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
        sent_path, gzipped = path, False
        if gzip:
            sibling = self._open(path + b".gz")
            if sibling is not None and stat.S_ISREG(sibling[1].st_mode):
                os.close(opened[0])
                opened, sent_path, gzipped = sibling, path + b".gz", True
            elif sibling is not None:
                os.close(sibling[0])
        fd, info = opened
        try:
            known = self._represent(fd, info, content_type(path), gzipped)
        except OSError as error:  # it changed as we read it: let the client ask again
            os.close(fd)
            log.warning("%r changed while being read: %s", sent_path, error)
            respond(exchange, FileNotFoundHereError())
            return
        if known.body is not None:
            os.close(fd)
            fd = -1
            self.known.put((path, gzipped), known)
        self._send(exchange, request, known, fd)

    def _remembered(self, path: bytes, gzip: bool) -> Representation | None:
        """The remembered small file at ``path`` (its .gz when taken), if it is unchanged.

        One ``stat`` (two for a gzip client when no sibling exists); None sends the
        request the long way, which checks everything and remembers the file.
        """
        if gzip:
            try:
                info = os.stat(path + b".gz")
            except OSError:
                pass
            else:
                return self._unchanged((path, True), info)
        try:
            info = os.stat(path)
        except OSError:
            return None
        return self._unchanged((path, False), info)

    def _unchanged(self, key: tuple[bytes, bool], info: os.stat_result) -> Representation | None:
        known = self.known.get(key)
        return known if known is not None and known.identity == _identity(info) else None

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

    def _represent(
        self, fd: int, info: os.stat_result, type_: bytes, gzipped: bool
    ) -> Representation:
        """The fields of the open file (and its bytes when small)."""
        size = info.st_size
        etag = entity_tag(info.st_mtime_ns, size, b"gz" if gzipped else b"")
        mtime = int(info.st_mtime)
        modified = _DATES.get(mtime)
        if modified is None:
            modified = http_date(mtime)
            _DATES.put(mtime, modified)
        validators = [(b"ETag", etag), (b"Last-Modified", modified)]
        if self.cache_control:
            validators.append((b"Cache-Control", self.cache_control))
        if self.precompressed:
            validators.append(_VARY)
        headers = [(b"Content-Type", type_)]
        if gzipped:
            headers.append((b"Content-Encoding", b"gzip"))
        headers += validators
        headers.append((b"Accept-Ranges", b"bytes"))
        body = None
        if size <= SMALL:
            body = os.pread(fd, size, 0)
            if len(body) != size:  # changed while we looked: do not remember or trust it
                raise OSError(f"{size} bytes expected, {len(body)} read")
        return Representation(_identity(info), size, mtime, etag, headers, validators, body)

    def _redirect(self, exchange: Any, location: bytes) -> None:
        exchange.respond(
            301,
            "Moved Permanently",
            [(b"Location", location), (b"Content-Length", b"0")],
        )

    # ------------------------------------------------------------ answering

    def _send(self, exchange: Any, request: Request, known: Representation, fd: int) -> None:
        """Answer from a representation; ``fd`` (-1 when the bytes are in ``known``) is
        closed here or by the body's sender."""
        method = request.method
        decision = evaluate_preconditions(method, request.headers, known.etag, known.mtime)
        if decision is Precondition.NOT_MODIFIED or decision is Precondition.FAILED:
            if fd >= 0:
                os.close(fd)
            if decision is Precondition.FAILED:
                respond(exchange, PreconditionFailedError())
            else:
                exchange.respond(304, "Not Modified", list(known.validators))
            return
        length = known.size
        ranges: list[tuple[int, int]] | RangeResult = RangeResult.IGNORE
        if method == b"GET" and decision is Precondition.PROCEED:
            for field_name, value in request.headers:
                if len(field_name) == 5 and field_name.lower() == b"range":
                    ranges = parse_range(value, length)
                    break
        if ranges is RangeResult.UNSATISFIABLE:
            if fd >= 0:
                os.close(fd)
            unsatisfiable = [(b"Content-Range", b"bytes */%d" % length)]
            respond(exchange, RangeNotSatisfiableError(), extra=unsatisfiable)
            return
        headers = list(known.headers)
        pieces: list[Piece]
        if ranges is RangeResult.IGNORE:
            status, phrase = 200, "OK"
            pieces, size = [(0, length)], length
        elif len(ranges) == 1:
            status, phrase = 206, "Partial Content"
            first, last = ranges[0]
            headers.append((b"Content-Range", b"bytes %d-%d/%d" % (first, last, length)))
            pieces, size = [(first, last - first + 1)], last - first + 1
        else:
            status, phrase = 206, "Partial Content"
            pieces, size, boundary = multipart(ranges, length, headers[0][1])
            headers[0] = (b"Content-Type", b"multipart/byteranges; boundary=" + boundary)
        headers.append((b"Content-Length", b"%d" % size))
        body = known.body
        if method == b"HEAD" or size == 0 or body is not None:
            if fd >= 0:
                os.close(fd)
            content = b"" if method == b"HEAD" or body is None else _from_memory(body, pieces)
            exchange.respond(status, phrase, headers, content)
            return
        exchange.response_start(status, phrase, headers)
        send_pieces(exchange, fd, pieces, self.sendfile)


def _from_memory(body: bytes, pieces: list[Piece]) -> bytes:
    """The body the pieces describe, cut from a file's bytes in memory."""
    if len(pieces) == 1 and pieces[0] == (0, len(body)):
        return body
    parts = []
    for piece in pieces:
        if isinstance(piece, bytes):
            parts.append(piece)
        else:
            offset, count = piece
            parts.append(body[offset : offset + count])
    return b"".join(parts)


def _real_path(fd: int, path: bytes) -> bytes:
    """Where the open descriptor ``fd`` (opened as ``path``) really is."""
    if _PROC_FDS:
        return os.fsencode(os.readlink(f"/proc/self/fd/{fd}"))
    return os.path.realpath(path)
