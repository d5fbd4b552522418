"""A faulty origin behind ``thor-gateway --proxy``: memory and upstream sockets (issue 16, point 4).

    python benchmarks/reliability/fault_origin.py [--seconds 120] [--clients 16]
        [--mix ok=40,reset=12,stall=12,drip=12,garbage=12,early=12] [--idle-timeout S]
        [--root DIR] [-- GATEWAY ARGS...]
    python benchmarks/reliability/fault_origin.py --serve PORT [--mix ...]   # the origin alone

The origin (asyncio, this file) picks per request, by the weights of ``--mix``:

- ``ok``: a 200 with a small body, keep-alive;
- ``reset``: reads the request, then resets the connection (SO_LINGER 0);
- ``stall``: reads the request and never answers (the connection stays open until the
  client leaves; the gateway answers 504 after ``--upstream-timeout``);
- ``drip``: a 200 whose 64-byte body comes one byte per 20 ms, keep-alive;
- ``garbage``: a line that is no status line, then closes;
- ``early``: a head promising 1000 bytes, 10 of them, then closes.

The gateway (``python -m thor_gateway --proxy /=http://127.0.0.1:ORIGIN`` from ``--root``,
one process, with ``--upstream-timeout 2`` so that stalls end soon) is driven by
``--clients`` threads doing keep-alive GETs for ``--seconds``; its resident memory is
sampled every second, and afterwards its sockets to the origin are counted
(``/proc/PID/fd`` joined with ``/proc/net/tcp``) until the pool's idle timeout
(``--idle-timeout``, the proxy's ``idle_timeout``) has passed twice.  Prints RSS at start
(after a warm-up), at the end and its growth per minute, the answers by status, and the
upstream sockets left; exits 1 if growth over the second half of the run exceeds
``--max-growth`` MB or a socket outlives the idle timeout.  ``--inspect`` runs the gateway
under tracemalloc and prints what grew (allocation sites, objects by type) between the
end of the warm-up and the end of the load.  Linux; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import free_port, wait_for

FAULTS = ("ok", "reset", "stall", "drip", "garbage", "early")
DEFAULT_MIX = "ok=40,reset=12,stall=12,drip=12,garbage=12,early=12"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
DRIP_BODY = b"d" * 64
DRIP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(DRIP_BODY)
EARLY = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"
GARBAGE = b"\x16\x03\x01garbage, not a status line\r\n\r\n"


def parse_mix(text: str) -> tuple[list[str], list[float]]:
    names, weights = [], []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in FAULTS:
            raise SystemExit(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
        names.append(name)
        weights.append(float(weight or 1))
    return names, weights


# ------------------------------------------------------------------ the faulty origin


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request head (GETs: no body); False at EOF."""
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return False
    return True


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    mix: tuple[list[str], list[float]],
    counts: collections.Counter[str],
) -> None:
    names, weights = mix
    try:
        while await _read_request(reader):
            fault = random.choices(names, weights)[0]
            counts[fault] += 1
            if fault == "ok":
                writer.write(OK)
                await writer.drain()
                continue
            if fault == "drip":
                writer.write(DRIP_HEAD)
                for i in range(len(DRIP_BODY)):
                    writer.write(DRIP_BODY[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.02)
                continue
            if fault == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif fault == "stall":
                await reader.read()  # until the client gives up
            elif fault == "garbage":
                writer.write(GARBAGE)
            elif fault == "early":
                writer.write(EARLY)
            break
    except ConnectionError:
        pass
    finally:
        writer.close()


def serve_origin(port: int, mix: tuple[list[str], list[float]]) -> None:
    """Run the faulty origin on 127.0.0.1:``port`` until killed."""
    counts: collections.Counter[str] = collections.Counter()

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(r, w, mix, counts), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------ measuring the gateway


# ``--inspect``: mounted at /__inspect in the gateway (PYTHONTRACEMALLOC set), it answers
# what grew since its previous call: the top allocation sites (tracemalloc) and the object
# counts by type (gc), so that growth can be told from a leak.
INSPECT_APP = r"""
import collections, ctypes, gc, json, os, re, sys, tempfile, tracemalloc

state = {"snapshot": None, "types": collections.Counter()}


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def allocators():
    # glibc: bytes in use and free inside malloc's heaps (free ones are fragmentation);
    # pymalloc: its arenas, from sys._debugmallocstats (it writes to the C stderr).
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    mb = 2**20
    out = {"malloc_in_use_mb": info.uordblks / mb, "malloc_free_mb": info.fordblks / mb,
           "malloc_mmap_mb": info.hblkhd / mb}
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode()
    for key, pattern in (("pymalloc_arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
                         ("pymalloc_unused_pools", r"(\d+) unused pools")):
        match = re.search(pattern, text)
        if match:
            out[key] = int(match[1].replace(",", ""))
    return out


def app(environ, start_response):
    # Cyclic garbage (freed only by the collector, so it raises the peak and fragments the
    # heap): from the first call on, the collector keeps what it finds (DEBUG_SAVEALL);
    # the second call reports it by type.
    gc.collect()
    garbage = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL if state["snapshot"] is None else 0)
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    report = {"traced_mb": tracemalloc.get_traced_memory()[0] / 2**20, **allocators()}
    if state["snapshot"] is not None:
        stats = snapshot.compare_to(state["snapshot"], "lineno")[:12]
        report["sites"] = [str(stat) for stat in stats]
        grown = types - state["types"]
        report["types"] = grown.most_common(12)
        report["cyclic_garbage"] = [sum(garbage.values()), garbage.most_common(15)]
    state["snapshot"], state["types"] = snapshot, types
    body = json.dumps(report, indent=1).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def inspect(port: int) -> dict[str, object]:
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/__inspect")
    report: dict[str, object] = json.loads(conn.getresponse().read())
    conn.close()
    return report


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match[1]) / 1024 if match else 0.0


TCP_STATES = {
    "01": "ESTABLISHED",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0B": "CLOSING",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
}


def upstream_sockets(pid: int, origin_port: int) -> collections.Counter[str]:
    """The gateway's open sockets whose peer is the origin, by TCP state."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    states: collections.Counter[str] = collections.Counter()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == origin_port and fields[9] in inodes:
            states[TCP_STATES.get(fields[3], fields[3])] += 1
    return states


class Clients:
    """``count`` threads doing keep-alive GETs through the gateway; answers by status."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        n = 0
        while not self.stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            n += 1
            try:
                conn.request("GET", f"/item/{n}")
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__  # an aborted response (a fault mid-body)
                conn.close()
                conn = None
            with self.lock:
                self.statuses[outcome] += 1
        if conn is not None:
            conn.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def start_gateway(
    root: Path, origin_port: int, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "thor_gateway",
        "-b",
        f"127.0.0.1:{port}",
        "--no-access-log",
        "--upstream-timeout",
        "2",
        "--log-level",
        "error",
    ]
    if args.idle_timeout is not None:  # through a config file: a [[proxy]] table
        config = Path(args.tmp, "gateway.toml")
        config.write_text(
            f'[[proxy]]\nprefix = "/"\nupstreams = ["http://127.0.0.1:{origin_port}"]\n'
            f"idle_timeout = {args.idle_timeout}\nupstream_timeout = 2\n"
        )
        command += ["-c", str(config)]
    else:
        command += ["--proxy", f"/=http://127.0.0.1:{origin_port}"]
    env = dict(os.environ)
    if args.inspect:
        Path(args.tmp, "fault_inspect.py").write_text(INSPECT_APP)
        command += ["--mount", "/__inspect=fault_inspect:app", "--pythonpath", args.tmp]
        env["PYTHONTRACEMALLOC"] = "1"
    proc = subprocess.Popen([*command, *args.gateway_args], cwd=root, env=env)
    wait_for(port)
    proc.port = port  # type: ignore[attr-defined]
    return proc


def measure(args: argparse.Namespace) -> int:
    origin_port = free_port()
    origin = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(origin_port), "--mix", args.mix]
    )
    wait_for(origin_port)
    gateway = start_gateway(args.root, origin_port, args)
    pid, port = gateway.pid, gateway.port  # type: ignore[attr-defined]
    samples: list[tuple[float, float]] = []
    try:
        clients = Clients(port, args.clients)
        started = time.monotonic()
        time.sleep(min(10.0, args.seconds / 5))  # warm-up: pools, caches, the allocator
        if args.inspect:
            baseline = inspect(port)
            print(f"after the warm-up: {baseline}")
        while (elapsed := time.monotonic() - started) < args.seconds:
            samples.append((elapsed, rss_mb(pid)))
            if len(samples) % 15 == 1:
                sockets = dict(upstream_sockets(pid, origin_port))
                print(f"  {elapsed:6.0f}s  RSS {samples[-1][1]:6.1f} MB  upstream {sockets}")
            time.sleep(1.0)
        clients.finish()
        stopped = time.monotonic()
        if args.inspect:
            report = inspect(port)
            sites = report.pop("sites", [])
            types = report.pop("types", None)
            garbage = report.pop("cyclic_garbage", None)
            print(f"at the end: {report}; grown since warm-up:")
            for site in sites:  # type: ignore[attr-defined]
                print(f"  {site}")
            print(f"  objects by type: {types}")
            print(f"  cyclic garbage (objects, by type): {garbage}")
        idle_timeout = args.idle_timeout if args.idle_timeout is not None else 60.0
        after: dict[str, int] = {}
        while time.monotonic() - stopped < 2 * idle_timeout + 2:
            after = dict(upstream_sockets(pid, origin_port))
            if not after:
                break
            time.sleep(0.5)
        left_after = time.monotonic() - stopped
        final_rss = rss_mb(pid)
    finally:
        gateway.terminate()
        origin.terminate()
        gateway.wait(30)
        origin.wait(30)
    first, last = samples[0][1], samples[-1][1]
    half = samples[len(samples) // 2]
    late_growth = last - half[1]
    minutes = max(1e-9, (samples[-1][0] - samples[0][0]) / 60)
    print(f"answers: {dict(clients.statuses.most_common())}")
    print(
        f"RSS: {first:.1f} MB after warm-up -> {last:.1f} MB at the end "
        f"({(last - first) / minutes:+.2f} MB/min; second half {late_growth:+.1f} MB); "
        f"{final_rss:.1f} MB once idle"
    )
    left = sum(after.values())
    print(
        f"upstream sockets after the load: {after or 0} "
        f"({'none' if not left else 'still'} open after {left_after:.1f} s; "
        f"pool idle timeout {idle_timeout:g} s)"
    )
    return 1 if late_growth > args.max_growth or left else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help="run only the origin")
    parser.add_argument("--mix", default=DEFAULT_MIX)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--idle-timeout", type=float, help="the proxy's idle_timeout (default: its own, 60 s)"
    )
    parser.add_argument("--max-growth", type=float, default=5.0)
    parser.add_argument(
        "--inspect", action="store_true", help="trace allocations in the gateway (slower)"
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("gateway_args", nargs="*")
    args = parser.parse_args()
    mix = parse_mix(args.mix)
    if args.serve:
        serve_origin(args.serve, mix)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        sys.exit(measure(args))


if __name__ == "__main__":
    main()
