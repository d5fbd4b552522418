"""HTTP/2 hello world: Thor's native hello and thor-gateway's ASGI hello over h2c and over
TLS with ALPN ``h2``, against hypercorn and granian, with ``h2load``.

Usage::

    python benchmarks/h2_hello.py [--tls | --both] [--rounds 3] [--requests 40000]
                                  [--venv /tmp/h2bench]

Each server in turn is pinned to CPU 0 (``taskset -c 0``, one process) and ``h2load`` runs
on CPU 1, twice: ``-c 16 -m 10`` (16 connections, 10 concurrent streams each) and
``-c 64 -m 1``.  Cleartext by default (HTTP/2 with prior knowledge, ``http://``); with
``--tls`` over ``https://`` with a self-signed P-256 certificate made at start by the
``openssl`` CLI, h2load picking ``h2`` by ALPN; ``--both`` runs both.  HTTP/1.1 is
measured too for Thor's servers (``h2load --h1``, ALPN ``http/1.1`` over TLS), for the
HTTP/2-vs-HTTP/1.1 ratio.  Printed for each (transport, server, load): requests per second
and the server's CPU time per request (user + system from ``/proc``, the whole process tree),
as the median of ``--rounds`` rounds with the lowest and highest, then Thor's ratios to
each other server.  On a machine shared with other work, read the CPU figures: requests per
second move with whatever else runs, CPU time per request much less.

``h2load`` is Debian's ``nghttp2-client``.  hypercorn and granian are looked for in
``--venv`` (``python -m venv /tmp/h2bench && /tmp/h2bench/bin/pip install hypercorn
granian``: a throwaway venv, never the project's dependencies) or skipped.  hypercorn is
given ``--slow-requests`` (a tenth as many by default): it serves about 2k requests a
second.  Loopback only; run by hand.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from support import free_port, on_cpu0, wait_for

ROOT = Path(__file__).resolve().parents[1]
LOADS = {"c16m10": ["-c", "16", "-m", "10"], "c64m1": ["-c", "64", "-m", "1"]}
THOR = ("thor-native", "gateway-asgi")
# apps/hello_thor.py's handler on an HttpServer given a TLS context: the server sets the
# context's ALPN list to h2, http/1.1 itself.
NATIVE_TLS = """\
import sys, thor
from thor.http.server import HttpServer
from thor.tls import server_context
from apps.hello_thor import handler
server = HttpServer(sys.argv[1], int(sys.argv[2]), tls_context=server_context(*sys.argv[3:5]))
server.on("exchange", handler)
thor.run()
"""

Key = tuple[str, str, str]  # transport, server, load


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (Linux /proc): granian
    and hypercorn serve from child processes."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:13])  # utime stime
        todo += [int(child) for child in children]
    return total / os.sysconf("SC_CLK_TCK")


def h2load(url: str, load: list[str], requests: int, h1: bool = False) -> tuple[float, int]:
    """Requests per second that h2load (on CPU 1) measured, and how many succeeded."""
    command = ["taskset", "-c", "1", "h2load", "-n", str(requests), *load]
    if h1:
        command.append("--h1")
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=900).stdout
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    failed = re.search(r"(\d+) failed", out)
    if not match:
        raise RuntimeError(f"h2load failed:\n{out}")
    if failed and int(failed[1]):
        print(f"  ({failed[1]} of {requests} requests failed: req/s counts the rest)")
    protocol = re.search(r"Application protocol: (\S+)", out)
    if protocol and protocol[1] not in (("http/1.1",) if h1 else ("h2", "h2c")):
        raise RuntimeError(f"negotiated {protocol[1]}")
    succeeded = re.search(r"(\d+) succeeded", out)
    return float(match[1]), int(succeeded[1]) if succeeded else requests


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed P-256 certificate for 127.0.0.1 and its PKCS#8 key (granian wants
    PKCS#8, which ``openssl req -newkey`` writes)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key)),
            *("-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def servers(port: int, venv: Path, tls: tuple[str, str] | None) -> dict[str, list[str]]:
    python = sys.executable
    native = [python, "apps/hello_thor.py", "127.0.0.1", str(port)]
    gateway = [python, "-m", "thor_gateway", "apps.hello_asgi:app", "-b", f"127.0.0.1:{port}"]
    gateway += ["--lifespan", "off"]
    if tls:
        native = [python, "-c", NATIVE_TLS, "127.0.0.1", str(port), *tls]
        gateway += ["--certfile", tls[0], "--keyfile", tls[1]]
    found = {"thor-native": native, "gateway-asgi": gateway}
    hypercorn, granian = venv / "bin" / "hypercorn", venv / "bin" / "granian"
    if hypercorn.exists():
        found["hypercorn"] = [str(hypercorn), "-b", f"127.0.0.1:{port}", "apps.hello_asgi:app"]
        if tls:
            found["hypercorn"] += ["--certfile", tls[0], "--keyfile", tls[1]]
    if granian.exists():
        found["granian"] = [str(granian), "--interface", "asgi", "--http", "2"]
        found["granian"] += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        found["granian"] += ["--no-ws", "apps.hello_asgi:app"]
        if tls:
            found["granian"] += ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]]
    return found


def measure(
    transport: str,
    name: str,
    command: list[str],
    port: int,
    requests: int,
    results: dict[Key, list[tuple[float, float]]],
) -> None:
    """Start one server on CPU 0, run each load against it, record (req/s, µs CPU/request)."""
    url = f"{'https' if transport == 'tls' else 'http'}://127.0.0.1:{port}/"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = on_cpu0(command, env)
    try:
        wait_for(port, 60.0)
        h2load(url, LOADS["c16m10"], 2000)  # warm up
        runs = [(load, flags, False) for load, flags in LOADS.items()]
        if name in THOR:
            runs.append(("h1-c16m10", LOADS["c16m10"], True))
        for load, flags, h1 in runs:
            before = cpu_seconds(process.pid)
            try:
                rps, done = h2load(url, flags, requests, h1=h1)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                print(f"{transport:4} {name:14} {load:10} failed: {str(error)[:200]}", flush=True)
                continue
            used = cpu_seconds(process.pid) - before
            cost = used * 1e6 / max(done, 1)
            results.setdefault((transport, name, load), []).append((rps, cost))
            print(
                f"{transport:4} {name:14} {load:10} {rps:10.0f} req/s {cost:8.1f} us CPU/request",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--slow-requests", type=int, default=0, help="for hypercorn")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/h2bench"))
    parser.add_argument("--only", default="", help="comma-separated server names")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--tls", action="store_true", help="TLS with ALPN instead of h2c")
    which.add_argument("--both", action="store_true", help="h2c and TLS")
    args = parser.parse_args()
    for tool in ("h2load", "taskset", "openssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install nghttp2-client util-linux openssl)")
    transports = ["h2c", "tls"] if args.both else ["tls"] if args.tls else ["h2c"]
    results: dict[Key, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as directory:
        tls = make_certificate(Path(directory))
        for _ in range(args.rounds):
            for transport in transports:
                names = servers(0, args.venv, None)
                for name in args.only.split(",") if args.only else names:
                    port = free_port()
                    command = servers(port, args.venv, tls if transport == "tls" else None)
                    slow = args.slow_requests or args.requests // 10
                    requests = slow if name == "hypercorn" else args.requests
                    measure(transport, name, command[name], port, requests, results)
    report(results)


def spread(values: list[float], digits: int) -> str:
    """``median (lowest - highest)``, or the one value."""
    median = f"{statistics.median(values):.{digits}f}"
    if len(values) < 2:
        return median
    return f"{median} ({min(values):.{digits}f} - {max(values):.{digits}f})"


def report(results: dict[Key, list[tuple[float, float]]]) -> None:
    """The medians (and ranges) of each figure, then Thor's ratios of the medians to each
    other server: requests per second, and per CPU-second."""
    print("\ntransport server         load       req/s                  us CPU/request")
    for (transport, name, load), values in sorted(results.items()):
        rps = spread([rate for rate, _ in values], 0)
        cost = spread([cost for _, cost in values], 1)
        print(f"{transport:9} {name:14} {load:10} {rps:22} {cost}")
    rate = {key: statistics.median(v[0] for v in values) for key, values in results.items()}
    cost = {key: statistics.median(v[1] for v in values) for key, values in results.items()}
    print()
    for transport, ours, load in sorted(rate):
        if ours not in THOR or load not in LOADS:
            continue
        for other in sorted({name for _, name, _ in rate} - set(THOR)):
            theirs = (transport, other, load)
            if theirs in rate:
                print(
                    f"{transport} {ours} / {other} at {load}: "
                    f"{rate[transport, ours, load] / rate[theirs]:.2f}x req/s, "
                    f"{cost[theirs] / cost[transport, ours, load]:.2f}x per CPU-second"
                )
        h1 = (transport, ours, "h1-" + load)
        if h1 in cost:
            print(
                f"{transport} {ours}: per CPU-second, HTTP/2 / HTTP/1.1 at {load}: "
                f"{cost[h1] / cost[transport, ours, load]:.2f}x"
            )


if __name__ == "__main__":
    main()
