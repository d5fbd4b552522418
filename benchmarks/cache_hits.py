"""What a cache hit costs: thor-gateway --cache against the native hello handler, an
uncached proxied request, nginx proxy_cache and Varnish (issue 15's benchmark).

Usage::

    python benchmarks/cache_hits.py [--seconds 5] [--connections 64] [--only NAME ...]
    python benchmarks/cache_hits.py --repeat 5 --seconds 2 --only "proxy 1k" "miss 1k"
    python benchmarks/cache_hits.py --callgrind --seconds 20 --connections 8 [--only ...]

Each server in turn runs pinned to CPU 0 (``taskset``), wrk and the origin on CPU 1; for
each the requests per second and the server process's user and system CPU and minor page
faults per request (``/proc/PID/stat``, summed over the process and its children: Varnish
works in a child of its manager) are printed.  CPU per request is the figure to compare on
a shared machine: it does not depend on what else runs on the other core.

- ``hello``: ``thor-gateway apps.hello_thor:handler``, the native floor;
- ``hit 1k`` / ``hit 64k``: ``thor-gateway --proxy /=ORIGIN --cache``, warm;
- ``miss 1k``: the same, each request for a URL not seen before (``/1k?N``, N counted
  up by a wrk script): every request fetches and stores a response (``fwd=miss``);
- ``stale 1k``: the same, for 1000 URLs whose responses are stale at once (``max-age=0``;
  the origin ignores If-Modified-Since): every request fetches its URL again and stores
  the answer (``fwd=stale``);
- ``proxy 1k``: ``thor-gateway --proxy /=ORIGIN`` without the cache, for the URLs of
  ``miss 1k``; ``proxy stale 1k``: for those of ``stale 1k``.  A miss's cost is its CPU
  per request over the proxy's for the same requests (the target: at most 1.1x);
- ``miss 64k`` / ``proxy 64k``: the same two with a 64 KiB body;
- ``nginx hit 1k`` / ``64k``: nginx ``proxy_cache``, one process;
- ``varnish hit 1k`` / ``64k``: ``varnishd -F -b ORIGIN -s malloc`` with the built-in VCL
  (it caches by the RFC's defaults; nothing added), one thread pool, when Varnish is
  installed (``apt-get install varnish``).

With ``--repeat N``, the runs go round N times, in turn (so that a pair like ``miss 1k`` and
``proxy 1k`` runs close together, under the same load), and a summary follows: each run's
median and lowest CPU per request and its median rate, and the issue's ratios, each the
median of the ratios of its pair's runs in the same round.  On a machine whose cores are
shared (a virtual machine), a single run's CPU per request swings by tens of percent with
what else runs; the median over rounds is the figure to quote.

With ``--callgrind``, Thor's runs go under ``valgrind --tool=callgrind`` instead, with the
counts zeroed after the warm-up and dumped after the measured run, and each prints its
instructions per request: the same requests, origin and concurrency as the CPU figures,
counted in a way that does not swing with what else the machine runs (under valgrind a
server is some 50 times slower: 20 s and 8 connections give a few thousand requests).

The origin is nginx serving files (with ``expires 1h``) when installed, and the benchmark
needs it. Linux, ``wrk``, ``taskset`` and ``nginx``; loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]

NGINX_COMMON = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/{name}.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    {http}
}}
"""
ORIGIN = """
    server {{
        listen 127.0.0.1:{port};
        root {dir}/files;
        etag off;
        if_modified_since off;
        location /miss {{ add_header Cache-Control "max-age=0"; try_files /1k =404; }}
        location / {{ expires 1h; }}
    }}
"""
CACHE = """
    proxy_cache_path {dir}/cache keys_zone=hits:10m max_size=64m;
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hits;
        }}
    }}
"""


def nginx(scratch: Path, name: str, http: str) -> list[str]:
    conf = scratch / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(dir=scratch, name=name, http=http))
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-e", "stderr", "-c", str(conf)]


def bound(cmd: list[str], port: int) -> list[str]:
    """A thor-gateway command listening on ``port``."""
    return [*cmd, "--bind", f"127.0.0.1:{port}"]


def nginx_cache(scratch: Path, origin: int, size: str, port: int) -> list[str]:
    """nginx proxy_cache on ``port`` in front of ``origin``."""
    return nginx(scratch, f"cache{size}", CACHE.format(dir=scratch, origin=origin, port=port))


def varnish(scratch: Path, name: str, port: int, origin: int) -> list[str]:
    """varnishd in the foreground with the built-in VCL in front of ``origin``: it stores
    what the RFC's defaults allow (a GET without Authorization or Cookie, a response
    without no-store or private), fresh for its max-age."""
    return [
        shutil.which("varnishd") or "/usr/sbin/varnishd",
        "-F", "-j", "none", "-n", str(scratch / f"varnish-{name}"),
        "-a", f"127.0.0.1:{port}", "-b", f"127.0.0.1:{origin}", "-s", "malloc,64m",
        # One pool; enough threads for wrk's connections (a keep-alive connection holds
        # a thread for timeout_linger after each request).
        "-p", "thread_pools=1", "-p", "thread_pool_min=80", "-p", "thread_pool_max=200",
    ]  # fmt: skip


def tree_cpu(pid: int) -> tuple[float, float, int]:
    """(user, system) CPU seconds of ``pid`` and its live descendants, and their minor page
    faults (memory touched for the first time: a store that grows takes them)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    faults = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        found = stats.get(current)
        if found is not None:
            faults += int(found[7])
            user += int(found[11]) / tick
            system += int(found[12]) / tick
        todo.extend(children.get(current, []))
    return user, system, faults


# A wrk script for URLs that do not repeat (``?`` and a count, after a prefix that tells
# the warm-up run from the measured one), or that cycle through ``modulo`` of them.  With
# one wrk thread, the count is the request's number.
URLS = """
local prefix, count, modulo = "", 0, nil
function init(args)
    prefix = args[1] or ""
    modulo = tonumber(args[2])
end
function request()
    count = count + 1
    local n = modulo and count % modulo or count
    return wrk.format(nil, wrk.path .. "?" .. prefix .. n)
end
"""
URLS_FILE = Path(tempfile.gettempdir()) / "thor-cache-hits-urls.lua"


def wrk(
    port: int, path: str, connections: int, seconds: float, urls: list[str] | None = None
) -> int:
    """Requests wrk got answered, for ``path`` alone or, with ``urls`` (the arguments of the
    URLS script, written to URLS_FILE by main), for the URLs the script makes of it."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    if urls is not None:
        command += ["-s", str(URLS_FILE)]
    command.append(f"http://127.0.0.1:{port}{path}")
    if urls is not None:
        command += ["--", *urls]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise SystemExit(f"wrk printed no count:\n{out}")


def measure(
    name: str,
    cmd: list[str],
    port: int,
    path: str,
    args: argparse.Namespace,
    spread: str | None = None,
    counted: Path | None = None,
) -> tuple[float, float]:
    """Run one server and print its rate and CPU per request, or with ``counted`` (where
    callgrind writes) its instructions per request; ``spread``: None for one URL,
    ``unique`` for URLs never repeated, a number for that many URLs in turn.  Returns
    (requests per second, CPU µs or instructions per request)."""
    if counted is not None:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={counted}", *cmd]
    server = subprocess.Popen(
        ["taskset", "-c", "0", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(port, 60 if counted is None else 400)
        warm = measured = None
        if spread == "unique":
            warm, measured = ["warm"], ["run"]
        elif spread is not None:
            warm = measured = ["", spread]
        wrk(port, path, args.connections, 2, warm)  # warm: the cache filled, connections pooled
        if counted is not None:
            callgrind_control("--zero", server.pid)
        user0, sys0, faults0 = tree_cpu(server.pid)
        count = wrk(port, path, args.connections, args.seconds, measured)
        user1, sys1, faults1 = tree_cpu(server.pid)
        if counted is not None:
            callgrind_control("--dump", server.pid)
    finally:
        server.terminate()
        server.wait(120)
    if counted is not None:
        # The dump taken after the measured run: its file ends in ".1".
        instructions = callgrind_total(Path(f"{counted}.1"))
        print(f"{name:15} {instructions / count:12,.0f} instructions/request", flush=True)
        return count / args.seconds, instructions / count
    per = 1e6 / count
    print(
        f"{name:15} {count / args.seconds:9,.0f} req/s   user {(user1 - user0) * per:6.1f} µs/req"
        f"   system {(sys1 - sys0) * per:6.1f} µs/req"
        f"   {(faults1 - faults0) / count:5.2f} faults/req",
        flush=True,
    )
    return count / args.seconds, (user1 - user0 + sys1 - sys0) * per


# The ratios: (what, of run, over run, by): "rate" compares requests per second
# (a hit against hello, against Varnish), "cost" CPU (or instructions) per request.
RATIOS = [
    ("hit 1k / hello, rate", "hit 1k", "hello", "rate"),
    ("hit 64k / hello, rate", "hit 64k", "hello", "rate"),
    ("hit 1k / varnish, rate", "hit 1k", "varnish hit 1k", "rate"),
    ("hit 64k / varnish, rate", "hit 64k", "varnish hit 64k", "rate"),
    ("miss 1k / proxy 1k", "miss 1k", "proxy 1k", "cost"),
    ("stale 1k / proxy stale 1k", "stale 1k", "proxy stale 1k", "cost"),
    ("miss 64k / proxy 64k", "miss 64k", "proxy 64k", "cost"),
]


def summary(results: dict[str, list[tuple[float, float]]], unit: str) -> None:
    """Each run's median and lowest cost and its median rate over the rounds, then the
    ratios of RATIOS whose two runs both ran: the median of the rounds' own ratios."""
    print(
        f"\nover {max(map(len, results.values()))} rounds:  median {unit}  (lowest)  median req/s"
    )
    for name, values in results.items():
        costs = [cost for _, cost in values]
        rate = statistics.median(rate for rate, _ in values)
        print(f"{name:15} {statistics.median(costs):12,.1f}  ({min(costs):,.1f})  {rate:10,.0f}")
    for label, top, bottom, by in RATIOS:
        if top in results and bottom in results:
            index = 0 if by == "rate" else 1
            pairs = zip(results[top], results[bottom], strict=True)
            ratios = sorted(a[index] / b[index] for a, b in pairs)
            shown = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"{label:26} {statistics.median(ratios):.3f}x   (rounds: {shown})")


def callgrind_control(option: str, pid: int) -> None:
    subprocess.run(
        ["callgrind_control", option, str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


def callgrind_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no total in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", nargs="*", default=None, help="run names (as printed)")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count the instructions per request of Thor's runs under valgrind (a figure that "
        "does not swing with the machine's load; peers are skipped)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="go round the runs N times, in turn, and end with each run's median and the "
        "ratios' medians (for a machine whose load swings)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset", "nginx"):
        if shutil.which(tool) is None and not (
            tool == "nginx" and Path("/usr/sbin/nginx").exists()
        ):
            raise SystemExit(f"{tool} is needed")
    URLS_FILE.write_text(URLS)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "files", "cache"):
            (scratch / sub).mkdir()
        (scratch / "files" / "1k").write_bytes(b"x" * 1024)
        (scratch / "files" / "64k").write_bytes(b"x" * 65536)
        origin_port = free_port()
        origin = subprocess.Popen(
            [
                "taskset",
                "-c",
                "1",
                *nginx(scratch, "origin", ORIGIN.format(port=origin_port, dir=scratch)),
            ]
        )
        wait_for(origin_port)
        upstream = f"/=http://127.0.0.1:{origin_port}"
        gateway = [sys.executable, "-m", "thor_gateway"]
        try:
            cached = [*gateway, "--proxy", upstream, "--cache"]
            proxy = [*gateway, "--proxy", upstream]
            runs: list[tuple[str, list[str], str, str | None]] = [
                ("hello", [*gateway, "apps.hello_thor:handler"], "/", None),
                ("hit 1k", cached, "/1k", None),
                ("hit 64k", cached, "/64k", None),
                ("miss 1k", cached, "/1k", "unique"),
                ("proxy 1k", proxy, "/1k", "unique"),
                ("stale 1k", cached, "/miss", "1000"),
                ("proxy stale 1k", proxy, "/miss", "1000"),
                ("miss 64k", cached, "/64k", "unique"),
                ("proxy 64k", proxy, "/64k", "unique"),
            ]
            wanted = set(args.only or [])
            chosen: list[tuple[str, Callable[[int], list[str]], str, str | None]] = [
                (name, partial(bound, cmd), path, spread)
                for name, cmd, path, spread in runs
                if not wanted or name in wanted
            ]
            has_varnish = shutil.which("varnishd") or Path("/usr/sbin/varnishd").exists()
            for size in ("1k", "64k") if not args.callgrind else ():
                if not wanted or f"nginx hit {size}" in wanted:
                    chosen.append(
                        (
                            f"nginx hit {size}",
                            partial(nginx_cache, scratch, origin_port, size),
                            f"/{size}",
                            None,
                        )
                    )
                if has_varnish and (not wanted or f"varnish hit {size}" in wanted):
                    chosen.append(
                        (
                            f"varnish hit {size}",
                            partial(varnish, scratch, size, origin=origin_port),
                            f"/{size}",
                            None,
                        )
                    )
            counted = scratch / "callgrind.out" if args.callgrind else None
            results: dict[str, list[tuple[float, float]]] = {}
            for _ in range(args.repeat):
                for name, command, path, spread in chosen:
                    port = free_port()
                    # (counted: Thor's runs alone, the peers being left out with --callgrind)
                    found = measure(name, command(port), port, path, args, spread, counted)
                    results.setdefault(name, []).append(found)
            if args.repeat > 1:
                summary(results, "instructions" if args.callgrind else "CPU µs")
        finally:
            origin.terminate()
            origin.wait(10)


if __name__ == "__main__":
    main()
