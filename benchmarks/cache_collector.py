"""How long CPython's cyclic collector stops the loop for a full memory cache: a full
collection scans every tracked object, and a stored response is one (``store.py``).

Usage::

    python benchmarks/cache_collector.py [--entries 400000] [--served]

Fills a :class:`~thor_gateway.cache.store.MemoryStore` with ``--entries`` responses of
1 KiB, each stored as a fetch stores it (``Entry.fetched``, nine fields as nginx sends
them), with ``--served`` each also served once (its served fields made, as a hit makes
them), then prints the objects the collector tracks and the fastest of three full
collections (``gc.collect()``): the pause one costs every connection of the loop, which
the gateway's automatic collections also pay, each time the objects that outlived the
young collections grow by a quarter.  No network.
"""

from __future__ import annotations

import argparse
import gc
import time

from thor_gateway.cache.heads import analyse
from thor_gateway.cache.store import Entry, MemoryStore

FIELDS = [
    (b"Server", b"nginx"),
    (b"Date", b"Mon, 07 Dec 2026 23:00:00 GMT"),
    (b"Content-Type", b"application/octet-stream"),
    (b"Content-Length", b"1024"),
    (b"Last-Modified", b"Mon, 07 Dec 2026 22:00:00 GMT"),
    (b"Connection", b"keep-alive"),
    (b"Expires", b"Tue, 08 Dec 2026 00:00:00 GMT"),
    (b"Cache-Control", b"max-age=3600"),
    (b"Accept-Ranges", b"bytes"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=400_000)
    parser.add_argument("--served", action="store_true", help="serve each entry once")
    args = parser.parse_args()
    store = MemoryStore(1 << 40)
    body = b"x" * 1024
    now = time.time()
    for n in range(args.entries):
        fields = list(FIELDS)  # (a new list each time, as the proxy hands over)
        head = analyse(200, fields)
        key = b"http://origin/%d" % n
        stored = tuple(fields)  # (as the fetch keeps them)
        entry = Entry.fetched(key, head.vary, (), 200, b"OK", stored, [body], now, now, head, 300)
        if args.served:
            entry.serving()
        store.put(entry)
    gc.collect()
    gc.collect()  # (a tuple is untracked once the tuples in it are)
    pauses = []
    for _ in range(3):
        start = time.perf_counter()
        gc.collect()
        pauses.append(time.perf_counter() - start)
    print(
        f"{len(store):,} entries ({store.bytes / 2**20:,.0f} MiB counted), "
        f"{len(gc.get_objects()):,} objects tracked, "
        f"a full collection {min(pauses) * 1e3:,.1f} ms"
    )


if __name__ == "__main__":
    main()
