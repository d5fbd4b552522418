"""Where a cache miss's CPU time goes: the proxy, the cache bypassed, the cache not keeping
what it fetched, and the cache, in turn (docs/cache-cost.md, the eighth round).

Usage::

    python benchmarks/cache_cpu_split.py [--rounds 8] [--seconds 3] [--stale]

Each variant is ``thor-gateway --proxy /=ORIGIN`` (with ``--cache`` but the first), pinned to
CPU 0, under wrk on CPU 1 (64 connections, each request for a new URL; with ``--stale``, for
1000 URLs whose responses are stale at once), after a 2 s warm-up; the variants run in turn,
``--rounds`` times, and what is printed is each one's median user and system CPU and minor
page faults per request, and the median of its rounds' ratios to the proxy's CPU:

- ``proxy``: no cache;
- ``bypassed``: the cache's ``handle`` replaced by the proxy's (what a cached route costs
  before it does anything);
- ``not kept``: the memory store's ``put`` returns without storing (a miss does all but keep
  the response);
- ``cache``: the cache as it is.

The variants are made by a ``sitecustomize`` module on the gateway's path that replaces the
one method; the code under test is not changed.  CPU time is read from ``/proc`` (Linux),
and on a machine whose cores are shared a single round swings by ten percent or more: the
medians over rounds are the figures to compare.  Needs wrk, taskset and nginx (the origin:
cache_hits.py's); loopback only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cache_hits import ORIGIN, ROOT, URLS, URLS_FILE, nginx, tree_cpu, wrk
from support import free_port, on_cpu0, wait_for

# name: the sitecustomize that makes the variant (None: the gateway as it is), with --cache?
PATCHES: dict[str, tuple[str | None, bool]] = {
    "proxy": (None, False),
    "bypassed": (
        "from thor_gateway.cache.handler import CacheHandler\n"
        "def handle(self, exchange, request):\n"
        "    self.inner.handle(exchange, request)\n"
        "CacheHandler.handle = handle\n",
        True,
    ),
    "not kept": (
        "from thor_gateway.cache.store import MemoryStore\n"
        "MemoryStore.put = lambda self, entry, spool=None: True\n",
        True,
    ),
    "cache": (None, True),
}


def run(name: str, origin: int, scratch: Path, args: argparse.Namespace) -> tuple[float, ...]:
    """One round of one variant: (user µs, system µs, minor faults) per request."""
    patch, cached = PATCHES[name]
    env = dict(os.environ)
    if patch is not None:
        folder = scratch / name.replace(" ", "-")
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(patch)
        env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    port = free_port()
    command = [sys.executable, "-m", "thor_gateway", "-b", f"127.0.0.1:{port}"]
    command += ["--proxy", f"/=http://127.0.0.1:{origin}"] + (["--cache"] if cached else [])
    server = on_cpu0(command, env)
    try:
        wait_for(port)
        path, warm, measured = ("/miss", ["", "1000"], ["", "1000"]) if args.stale else (
            "/1k", ["warm"], ["run"]
        )  # fmt: skip
        wrk(port, path, 64, 2, warm)
        user0, sys0, faults0 = tree_cpu(server.pid)
        count = wrk(port, path, 64, args.seconds, measured)
        user1, sys1, faults1 = tree_cpu(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    per = 1e6 / count
    return (user1 - user0) * per, (sys1 - sys0) * per, (faults1 - faults0) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--stale", action="store_true", help="stale refetches, not new URLs")
    args = parser.parse_args()
    URLS_FILE.write_text(URLS)
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in PATCHES}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "files"):
            (scratch / sub).mkdir()
        (scratch / "files" / "1k").write_bytes(b"x" * 1024)
        origin_port = free_port()
        conf = ORIGIN.format(port=origin_port, dir=scratch)
        origin = subprocess.Popen(["taskset", "-c", "1", *nginx(scratch, "origin", conf)])
        try:
            wait_for(origin_port)
            for _ in range(args.rounds):
                for name in PATCHES:
                    results[name].append(run(name, origin_port, scratch, args))
                line = "  ".join(f"{n} {sum(r[-1][:2]):6.1f}" for n, r in results.items())
                print(f"round: {line}  (CPU µs a request)", flush=True)
        finally:
            origin.terminate()
            origin.wait(10)
    proxy = [user + system for user, system, _ in results["proxy"]]
    print(f"\n{'':9} {'user µs':>8} {'sys µs':>7} {'faults':>7}  CPU over the proxy's (rounds)")
    for name, rounds in results.items():
        user, system, faults = (statistics.median(r[i] for r in rounds) for i in range(3))
        ratios = sorted((u + s) / p for (u, s, _), p in zip(rounds, proxy, strict=True))
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(
            f"{name:9} {user:8.1f} {system:7.1f} {faults:7.2f}  "
            f"{statistics.median(ratios):.3f}x ({shown})"
        )


if __name__ == "__main__":
    main()
