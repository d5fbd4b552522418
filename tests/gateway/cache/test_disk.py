"""The disk store: entries as files that survive the process, within a byte budget, shared by
processes; damaged files are misses."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from tests.gateway.cache.test_handler import Clock, FakeExchange, Origin
from thor_gateway.cache import CacheHandler
from thor_gateway.cache.disk import SMALL, DiskStore, open_body, read_entry, route_dir
from thor_gateway.cache.rules import http_date
from thor_gateway.cache.store import BodyFile, Entry
from thor_gateway.routing.request import request_at_mount


def entry(key: bytes, body: bytes = b"x" * 100, secondary: tuple = ()) -> Entry:  # type: ignore[type-arg]
    headers = [(b"Cache-Control", b"max-age=60"), (b"X-\xe9", b"caf\xe9")]
    vary = tuple(n for n, _ in secondary)
    return Entry(key, vary, secondary, 200, b"OK", headers, body, 1.5, 2.5)


def body_of(e: Entry) -> bytes | None:
    """The entry's body, read from its file when it is kept there; None if that file is
    no longer the entry's."""
    if e.file is None:
        return e.body
    fd = open_body(e.file)
    if fd < 0:
        return None
    try:
        return os.pread(fd, e.file.length, 0)
    finally:
        os.close(fd)


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != "sweep.lock"]


def test_entries_survive_a_new_store_on_the_folder(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    assert store.variants(b"http://h/a") == []
    assert store.put(entry(b"http://h/a", b"one"))
    assert store.put(entry(b"http://h/a", b"two", ((b"accept", b"x"),)))
    assert store.put(entry(b"http://h/a", b"uno"))  # replaces the variant with that key
    again = DiskStore(tmp_path)  # a restart, or another worker
    found = sorted(again.variants(b"http://h/a"), key=lambda e: e.body)
    assert [e.body for e in found] == [b"two", b"uno"]
    first = found[1]
    assert (first.status, first.phrase, first.request_time, first.response_time) == (
        200,
        b"OK",
        1.5,
        2.5,
    )
    assert list(first.fields()) == [(b"Cache-Control", b"max-age=60"), (b"X-\xe9", b"caf\xe9")]
    assert first.lifetime == 60
    assert found[0].secondary == ((b"accept", b"x"),)
    assert again.remove(b"http://h/a") == 2
    assert store.variants(b"http://h/a") == []  # the first store sees it gone too
    assert files(tmp_path) == []


def test_a_change_by_another_process_is_seen(tmp_path: Path) -> None:
    one, two = DiskStore(tmp_path), DiskStore(tmp_path)
    one.put(entry(b"k", b"old"))
    assert [e.body for e in two.variants(b"k")] == [b"old"]  # now held parsed in two
    one.put(entry(b"k", b"newer"))
    assert [e.body for e in two.variants(b"k")] == [b"newer"]


def test_the_budget_is_kept_least_recently_used_first(tmp_path: Path) -> None:
    store = DiskStore(tmp_path, max_bytes=10_000)
    assert not store.put(entry(b"huge", b"z" * 20_000))
    for i in range(40):
        assert store.put(entry(b"k%d" % i, b"y" * 1000))
        assert sum(p.stat().st_size for p in files(tmp_path)) <= 10_000
        if i == 5:
            # k0 is the oldest but was read last (its access time is later than any other's)
            for n, t in ((0, 2_000_000_000), (1, 1_000)):
                for p in files(tmp_path):
                    if read_entry(str(p))[1].key == b"k%d" % n:  # type: ignore[index]
                        os.utime(p, (t, p.stat().st_mtime))
    assert store.evictions > 0
    assert store.variants(b"k39") != []
    assert store.variants(b"k0") != []
    assert store.variants(b"k1") == []


def test_damaged_files_are_misses_and_removed(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    for key in (b"a", b"b", b"c", b"d"):
        store.put(entry(key))
    paths = {read_entry(str(p))[1].key: p for p in files(tmp_path)}  # type: ignore[index]
    paths[b"a"].write_bytes(paths[b"a"].read_bytes()[:-10])  # truncated
    paths[b"b"].write_bytes(b"garbage\n")
    data = paths[b"c"].read_bytes()
    paths[b"c"].write_bytes(data.replace(b'"status":200', b'"status":"2"'))  # same length
    fresh = DiskStore(tmp_path)
    for key in (b"a", b"b", b"c"):
        assert fresh.variants(key) == []
        assert not paths[key].exists()
    assert [e.body for e in fresh.variants(b"d")] == [b"x" * 100]


def test_purge_by_prefix_and_route_folders(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    for key in (b"http://h/a/1", b"http://h/a/2", b"http://h/b"):
        store.put(entry(key))
    assert store.purge(b"http://h/a/") == 2
    assert store.variants(b"http://h/a/1") == []
    assert len(store.variants(b"http://h/b")) == 1
    assert route_dir("/c", "/") == "/c/_root"
    assert route_dir("/c", "/api/v1") == "/c/api_v1"
    assert route_dir("/c", "/../x") == "/c/.._x"  # one level: no separator survives


def _writer(root: str, tag: int) -> None:
    store = DiskStore(root, max_bytes=1 << 30)
    for i in range(150):
        store.put(entry(b"k%d" % (i % 5), bytes([65 + tag]) * (1000 + 997 * i)))


def test_concurrent_writers_leave_whole_files(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_writer, args=(str(tmp_path), n)) for n in range(3)]
    for p in procs:
        p.start()
    reader = DiskStore(tmp_path)
    seen = checked = 0
    deadline = time.monotonic() + 60
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        for e in reader.variants(b"k%d" % (seen % 5)):
            body = body_of(e)
            if body is None:
                continue  # replaced since it was listed: open_body saw it
            assert len(set(body)) == 1  # one writer's body, never a mix
            assert (len(body) - 1000) % 997 == 0
            checked += 1
        seen += 1
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert checked > 0
    assert len(files(tmp_path)) == 5  # no temporary file left behind
    for p in files(tmp_path):
        assert read_entry(str(p)) is not None


def test_a_spooled_body_is_written_as_it_comes_and_read_back_in_its_file(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    body = bytes(range(251)) * 1000  # larger than SMALL, and no period of a power of two
    assert len(body) > SMALL
    spool = store.spool(b"http://h/big")
    assert spool is not None
    for i in range(0, len(body), 10_000):
        assert spool.write(body[i : i + 10_000])
    temps = [p for p in files(tmp_path) if p.name.endswith(".tmp")]
    assert len(temps) == 1
    assert temps[0].stat().st_size >= len(body) - 65536
    spooled = Entry(
        b"http://h/big", (), (), 200, b"OK", [(b"ETag", b'"1"')], b"", 1.0, 2.0,
        file=BodyFile("", len(body)),
    )  # fmt: skip
    assert store.put(spooled, spool)
    assert spooled.file is not None
    assert spooled.body == b""
    assert spooled.length == ((b"Content-Length", b"%d" % len(body)),)
    assert [p.name.endswith(".tmp") for p in files(tmp_path)] == [False]
    again = DiskStore(tmp_path).variants(b"http://h/big")[0]  # another worker, or a restart
    assert again.body == b""
    assert again.file is not None
    assert body_of(again) == body
    # A 304 freshens the header section: the body is copied into the new file.
    fresh = Entry(
        b"http://h/big", (), (), 200, b"OK", [(b"ETag", b'"2"')], b"", 1.0, 3.0, file=again.file
    )
    assert store.put(fresh)
    assert open_body(again.file) == -1  # (the file the old entry was read from is gone)
    newest = DiskStore(tmp_path).variants(b"http://h/big")[0]
    assert list(newest.fields()) == [(b"ETag", b'"2"')]
    assert body_of(newest) == body
    # A small body spooled is held in memory with its entry once stored.
    small = store.spool(b"http://h/small")
    assert small is not None
    assert small.write(b"ab")
    assert small.write(b"cd")
    entry_small = Entry(
        b"http://h/small", (), (), 200, b"OK", [], b"", 1.0, 2.0, file=BodyFile("", 4)
    )
    assert store.put(entry_small, small)
    assert entry_small.body == b"abcd"
    assert entry_small.file is None
    # A spool whose length is not the entry's, or that is discarded, leaves nothing.
    wrong = store.spool(b"http://h/wrong")
    assert wrong is not None
    assert wrong.write(b"abc")
    entry_wrong = Entry(
        b"http://h/wrong", (), (), 200, b"OK", [], b"", 1.0, 2.0, file=BodyFile("", 4)
    )
    assert not store.put(entry_wrong, wrong)
    gone = store.spool(b"http://h/gone")
    assert gone is not None
    assert gone.write(b"x")
    gone.discard()
    assert store.variants(b"http://h/wrong") == []
    assert store.variants(b"http://h/gone") == []
    assert not [p for p in files(tmp_path) if p.name.endswith(".tmp")]


class ChunkedExchange(FakeExchange):
    """A client exchange without ``response_file`` (as over TLS): a body kept in a file is
    read to it in chunks; it counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks = 0

    def response_body(self, chunk: bytes) -> None:
        self.chunks += 1
        super().response_body(chunk)

    def response_done(self, trailers: Any = None, close: bool = False) -> None:
        super().response_done(trailers or [], close)


def test_the_handler_stores_to_disk_and_serves_from_the_file_in_chunks(tmp_path: Path) -> None:
    body = bytes(range(251)) * 1200  # 301,200 bytes: five 64 KiB reads
    clock = Clock()

    def reply(request: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 200, [(b"Cache-Control", b"max-age=60"), (b"Date", http_date(clock.now))], body

    origin = Origin(reply)
    cache = CacheHandler(origin, clock=clock, dir=str(tmp_path))

    def ask(method: bytes = b"GET", *more: tuple[bytes, bytes]) -> ChunkedExchange:
        exchange = ChunkedExchange()
        headers = [(b"Host", b"example.com"), *more]
        cache.handle(exchange, request_at_mount(exchange, method, b"/big", headers))  # type: ignore[arg-type]
        return exchange

    first = ask()
    assert first.body == body
    assert first.header(b"Cache-Status") == b"thor; fwd=miss; fwd-status=200; stored"
    stored = [p for p in files(tmp_path) if not p.name.endswith(".tmp")]
    assert len(stored) == 1
    assert stored[0].read_bytes()[: len(body)] == body
    clock.now += 1
    hit = ask()
    assert (hit.status, hit.header(b"Cache-Status"), hit.finished) == (200, b"thor; hit", True)
    assert hit.body == body
    assert hit.chunks == 5  # read from the file, 64 KiB at a time, not whole
    ranged = ask(b"GET", (b"Range", b"bytes=100000-100009"))
    assert (ranged.status, ranged.body) == (206, body[100_000:100_010])
    head = ask(b"HEAD")
    assert (head.status, head.body, head.finished) == (200, b"", True)
    assert head.header(b"Content-Length") == b"%d" % len(body)
    assert len(origin.seen) == 1
