"""A store on disk: it survives restarts and is shared by the workers of one gateway.

Layout: one file per stored response (variant), ``ROOT/ab/<primary hash>/<secondary
hash>``, the hashes SHA-256 of the primary key and of the secondary key (RFC 9111 §4.1),
so that a primary key's variants are one directory listing and its removal one directory.
A file is the body, then META, the JSON of what an :class:`~thor_gateway.cache.store.Entry`
holds besides its body, then a trailer ``THOR-CACHE/2 META BODY\\n`` (the two lengths, 20
digits each, so the trailer is found at a fixed distance from the end).  The body comes
first so that it can be written as it arrives (``spool``: a temporary file the Fetch writes
each chunk to, in the entry's directory), before the header section is complete with
everything the entry needs; a body larger than ``SMALL`` is never read whole: the entry
refers to the file (a :class:`~thor_gateway.cache.store.BodyFile`) and a hit sends it from
there in 64 KiB chunks or by ``sendfile`` (``thor_gateway/static/body.py``).

Theory of operation, for several processes on one directory without a lock per access:

- a write goes to a temporary file in the entry's directory (``*.tmp``) that is then renamed
  over the entry (``os.replace`` is atomic on POSIX): a reader sees the old file or the new one,
  never half of one, and concurrent writers of one entry leave whichever renamed last;
- a file that does not parse, or whose lengths do not match its size (damaged, truncated),
  is ignored and removed: a miss, never a wrong answer;
- recency is the file's access time, set by the store (``os.utime``, at most once a minute
  per entry, so mounts with ``noatime`` work too); eviction removes the least recently used
  files until the directory holds at most 90 % of ``max_bytes``.  A process sweeps when its
  own count of the bytes there (as of its last sweep, plus what it wrote since) passes
  ``max_bytes``, and at least every ``sweep_interval`` seconds when it writes, so the other
  workers' writes are seen; one ``fcntl`` lock on ``ROOT/sweep.lock`` keeps two sweeps apart
  (a process that finds it taken skips its sweep).  Between sweeps the directory can exceed
  its budget by what the other workers wrote since.
- each process keeps the entries it read last (within ``hot_bytes``) parsed in memory,
  checked against the file's inode, size and modification time on every use: a hit costs a
  directory listing and a ``stat`` per variant, not a read and a parse.  A body sent from
  its file is opened and checked against the same signature (``open_body``): a file
  replaced between the listing and the open is not sent as the entry's body.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from thor_gateway.cache.keys import SecondaryKey
from thor_gateway.cache.store import BodyFile, Entry, Spool
from thor_gateway.static.body import CHUNK

__all__ = ["SMALL", "DiskSpool", "DiskStore", "open_body", "read_entry", "route_dir"]

_MAGIC = b"THOR-CACHE/2 "
_TRAILER = len(_MAGIC) + 42  # the magic, two 20-digit lengths, a blank and a newline
_TOUCH_EVERY = 60.0  # seconds between two access-time updates of one entry
_LOW_WATER = 0.9  # a sweep removes entries until the directory holds this much of its budget
_TMP = ".tmp"
_ORPHAN_AGE = 3600.0  # a temporary file this old belongs to a writer that died
# A body up to this is read whole (one pread) and held with its entry; a larger one stays in
# its file and is sent from there in chunks (thor_gateway/static/body.py's CHUNK).
SMALL = CHUNK
Signature = tuple[int, int, int]


def route_dir(root: str, prefix: str) -> str:
    """The directory of one route's store under ``--cache-dir`` (one per route prefix)."""
    name = prefix.strip("/").replace("/", "_") or "_root"
    safe = "".join(c if c.isalnum() or c in "-_." else "%" for c in name)
    return os.path.join(root, safe)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def encode(entry: Entry) -> bytes:
    """The META and trailer that follow ``entry``'s body in its file."""
    meta = {
        "key": _text(entry.key),
        "vary": [_text(n) for n in entry.vary],
        "secondary": [[_text(n), None if v is None else _text(v)] for n, v in entry.secondary],
        "status": entry.status,
        "phrase": _text(entry.phrase),
        "headers": [[_text(n), _text(v)] for n, v in entry.fields()],
        "request_time": entry.request_time,
        "response_time": entry.response_time,
    }
    data = json.dumps(meta, separators=(",", ":")).encode("ascii")
    return data + _MAGIC + b"%020d %020d\n" % (len(data), entry.body_size)


def _raw(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value.encode("latin-1")


def decode(meta: bytes, body: bytes, file: BodyFile | None = None) -> Entry:
    """The entry a file's META and body stand for; ValueError (or a subclass) if damaged."""
    m = json.loads(meta)
    secondary: SecondaryKey = tuple(
        (_raw(n), None if v is None else _raw(v)) for n, v in m["secondary"]
    )
    status = m["status"]
    times = (m["request_time"], m["response_time"])
    if not isinstance(status, int) or not all(isinstance(t, int | float) for t in times):
        raise ValueError("bad status or times")
    return Entry(
        _raw(m["key"]),
        tuple(_raw(n) for n in m["vary"]),
        secondary,
        status,
        _raw(m["phrase"]),
        [(_raw(n), _raw(v)) for n, v in m["headers"]],
        body,
        float(times[0]),
        float(times[1]),
        file=file,
    )


def read_entry(path: str, small: int = SMALL) -> tuple[Signature, Entry] | None:
    """The entry in the file at ``path`` and its signature; None if absent or damaged.

    Its body is read when it is at most ``small`` bytes; otherwise the entry refers to the
    file (:class:`BodyFile`) and nothing of the body is read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # removed since it was listed
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        size = st.st_size
        tail = os.pread(fd, _TRAILER, size - _TRAILER) if size >= _TRAILER else b""
        if len(tail) != _TRAILER or not tail.startswith(_MAGIC) or tail[-1:] != b"\n":
            raise ValueError("not a cache file")
        meta_len, body_len = (int(n) for n in tail[len(_MAGIC) :].split())
        if body_len + meta_len + _TRAILER != size:
            raise ValueError("truncated or grown")  # written by no one but os.replace
        signature = (st.st_ino, size, st.st_mtime_ns)
        meta = os.pread(fd, meta_len, body_len)
        if body_len <= small:
            body, file = os.pread(fd, body_len, 0), None
            if len(body) != body_len:
                raise ValueError("short read")
        else:
            body, file = b"", BodyFile(path, body_len, signature)
        if len(meta) != meta_len:
            raise ValueError("short read")
        entry = decode(meta, body, file)
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            os.unlink(path)  # damaged: a miss from now on, and its bytes back
        return None
    finally:
        os.close(fd)
    return signature, entry


def open_body(file: BodyFile) -> int:
    """A descriptor of the file a stored body is in, or -1 when that file is no longer the
    one the entry was read from (replaced by a newer response, or removed)."""
    try:
        fd = os.open(file.path, os.O_RDONLY)
    except OSError:
        return -1
    st = os.fstat(fd)
    if (st.st_ino, st.st_size, st.st_mtime_ns) != file.signature:
        os.close(fd)
        return -1
    return fd


class DiskSpool:
    """A body written to a temporary file in its entry's directory as it arrives."""

    __slots__ = ("file", "path", "size")

    def __init__(self, path: str, file: BinaryIO) -> None:
        self.path = path
        self.file = file
        self.size = 0

    def write(self, chunk: bytes) -> bool:
        try:
            self.file.write(chunk)  # (buffered: small chunks are written together)
        except OSError:
            self.discard()
            return False
        self.size += len(chunk)
        return True

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class DiskStore:
    """Entries as files under ``root`` within ``max_bytes`` (see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        max_bytes: int = 64 << 20,
        *,
        hot_bytes: int = 8 << 20,
        sweep_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.hot_bytes = min(hot_bytes, max_bytes)
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.evictions = 0
        self._hot: OrderedDict[str, tuple[Signature, Entry]] = OrderedDict()
        self._hot_size = 0
        self._writes = 0
        self._swept_at = -1e18
        self.bytes = 0  # what the directory held at the last sweep, plus what was written since
        self.sweep()

    # --- paths ----------------------------------------------------------------------------

    def _dir(self, key: bytes) -> str:
        h = _hash(key)
        return os.path.join(self.root, h[:2], h)

    # --- the Store interface ---------------------------------------------------------------

    def variants(self, key: bytes) -> list[Entry]:
        folder = self._dir(key)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        found = []
        now = self.clock()
        for name in names:
            if name.endswith(_TMP):
                continue
            entry = self._load(os.path.join(folder, name), now)
            if entry is not None and entry.key == key:
                found.append(entry)
        return found

    def _load(self, path: str, now: float) -> Entry | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        hot = self._hot.get(path)
        if hot is not None and hot[0] == (st.st_ino, st.st_size, st.st_mtime_ns):
            self._hot.move_to_end(path)
            entry = hot[1]
        else:
            read = read_entry(path)
            if read is None:
                return None
            self._remember(path, *read)
            entry = read[1]
        if now - st.st_atime > _TOUCH_EVERY:  # recency for eviction, kept off the mtime
            with contextlib.suppress(OSError):
                os.utime(path, ns=(int(now * 1e9), st.st_mtime_ns))
        return entry

    def _remember(self, path: str, signature: Signature, entry: Entry) -> None:
        old = self._hot.pop(path, None)
        if old is not None:
            self._hot_size -= old[1].size
        if entry.size > self.hot_bytes:
            return
        self._hot[path] = (signature, entry)
        self._hot_size += entry.size
        while self._hot_size > self.hot_bytes:
            _, (_, gone) = self._hot.popitem(last=False)
            self._hot_size -= gone.size

    def spool(self, key: bytes) -> DiskSpool | None:
        """A temporary file in ``key``'s directory for a body as it arrives; None if the
        directory cannot be written (then nothing is stored)."""
        folder = self._dir(key)
        self._writes += 1
        temp = os.path.join(folder, f"{os.getpid()}.{self._writes}{_TMP}")
        for attempt in (1, 2):
            try:
                return DiskSpool(temp, open(temp, "w+b", buffering=CHUNK))
            except FileNotFoundError:
                if attempt == 2:
                    return None
                with contextlib.suppress(OSError):
                    os.makedirs(folder, exist_ok=True)  # first variant, or swept away
            except OSError:
                return None
        return None

    def put(self, entry: Entry, spool: Spool | None = None) -> bool:
        meta = encode(entry)
        size = entry.body_size + len(meta)
        if size + _TRAILER > self.max_bytes:
            if spool is not None:
                spool.discard()
            return False
        if spool is None:
            spool = self._write_body(entry)
            if spool is None:
                return False
        assert isinstance(spool, DiskSpool)
        if spool.size != entry.body_size or not spool.write(meta):
            spool.discard()
            return False
        path = os.path.join(self._dir(entry.key), _hash(repr(entry.secondary).encode()))
        body = b""
        try:
            spool.file.flush()
            fd = spool.file.fileno()
            st = os.fstat(fd)
            os.replace(spool.path, path)
            if entry.file is not None and entry.body_size <= SMALL:
                body = os.pread(fd, entry.body_size, 0)  # (a spooled body; the page cache)
            spool.file.close()
        except OSError:  # the directory was removed meanwhile (a purge), or the disk is full
            spool.discard()
            return False
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if len(body) == entry.body_size and entry.file is not None:
            entry.body, entry.file = body, None  # small: held with the entry
            entry.size += len(body)
        elif entry.file is not None:
            entry.file = BodyFile(path, entry.body_size, signature)
        self._remember(path, signature, entry)
        self.bytes += st.st_size
        if self.bytes > self.max_bytes or self.clock() - self._swept_at > self.sweep_interval:
            self.sweep()
        return True

    def _write_body(self, entry: Entry) -> DiskSpool | None:
        """A spool holding ``entry``'s body, from memory or copied from the file it is in (a
        304 freshens the header section of an entry whose body stays as it was)."""
        spool = self.spool(entry.key)
        if spool is None:
            return None
        if entry.file is None:
            if spool.write(entry.whole()):
                return spool
            return None
        source = open_body(entry.file)
        if source < 0:
            spool.discard()
            return None
        try:
            offset = 0
            while offset < entry.body_size:
                data = os.pread(source, min(CHUNK, entry.body_size - offset), offset)
                if not data or not spool.write(data):
                    spool.discard()
                    return None
                offset += len(data)
        except OSError:
            spool.discard()
            return None
        finally:
            os.close(source)
        return spool

    def remove(self, key: bytes) -> int:
        folder = self._dir(key)
        try:
            names = [n for n in os.listdir(folder) if not n.endswith(_TMP)]
        except FileNotFoundError:
            return 0
        shutil.rmtree(folder, ignore_errors=True)
        self._forget(folder)
        return len(names)

    def purge(self, prefix: bytes) -> int:
        count = 0
        for path, _, _ in self._files():
            read = read_entry(path, small=0)  # (the key is all that is needed)
            if read is not None and read[1].key.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    count += 1
        self._forget(str(self.root))
        return count

    def _forget(self, folder: str) -> None:
        for path in [p for p in self._hot if p.startswith(folder)]:
            self._hot_size -= self._hot.pop(path)[1].size

    # --- the budget --------------------------------------------------------------------------

    def _files(self) -> Iterator[tuple[str, float, int]]:
        """Every entry file: path, access time, size (temporary files left by a dead writer
        are removed on the way)."""
        now = self.clock()
        for top in os.scandir(self.root):
            if not top.is_dir(follow_symlinks=False):
                continue
            for folder in os.scandir(top.path):
                with contextlib.suppress(FileNotFoundError):
                    for item in os.scandir(folder.path):
                        with contextlib.suppress(FileNotFoundError):
                            st = item.stat(follow_symlinks=False)
                            if not item.name.endswith(_TMP):
                                yield item.path, st.st_atime, st.st_size
                            elif now - st.st_mtime > _ORPHAN_AGE:
                                os.unlink(item.path)

    def sweep(self) -> None:
        """Count the bytes stored, and remove the least recently used entries while they are
        over the budget (the module docstring says when this runs)."""
        with open(self.root / "sweep.lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another worker sweeps now
            files = list(self._files())
            total = sum(size for _, _, size in files)
            if total > self.max_bytes:
                files.sort(key=lambda f: f[1])
                goal = self.max_bytes * _LOW_WATER
                for path, _, size in files:
                    if total <= goal:
                        break
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                        self.evictions += 1
                    total -= size
                    if path in self._hot:
                        self._hot_size -= self._hot.pop(path)[1].size
            self.bytes = total
            self._swept_at = self.clock()
