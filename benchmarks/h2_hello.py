"""HTTP/2 hello world: Thor's native hello and thor-gateway's ASGI hello over h2c, against
hypercorn and granian, with ``h2load``.

Usage::

    python benchmarks/h2_hello.py [--requests 100000] [--venv /tmp/h2bench]

Each server in turn is pinned to CPU 0 (``taskset -c 0``, one process) and ``h2load`` runs
on CPU 1, over cleartext HTTP/2 with prior knowledge, twice: ``-c 16 -m 10`` (16
connections, 10 concurrent streams each) and ``-c 64 -m 1``.  Printed: requests per second
for each (server, load), and the ratio of each Thor server to each other one.  HTTP/1.1 is
measured too for Thor's native hello (``h2load --h1``), for the HTTP/2-vs-HTTP/1.1 ratio.

``h2load`` is Debian's ``nghttp2-client``.  hypercorn and granian are looked for in
``--venv`` (``python -m venv /tmp/h2bench && /tmp/h2bench/bin/pip install hypercorn
granian``: a throwaway venv, never the project's dependencies) or skipped.  Loopback only;
run by hand: the numbers depend on the machine and whatever else shares its CPUs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
LOADS = {"c16m10": ["-c", "16", "-m", "10"], "c64m1": ["-c", "64", "-m", "1"]}


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


def h2load(port: int, load: list[str], requests: int, h1: bool = False) -> tuple[float, int]:
    """Requests per second that h2load (on CPU 1) measured, and how many succeeded."""
    command = ["taskset", "-c", "1", "h2load", "-n", str(requests), *load]
    if h1:
        command.append("--h1")
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=600
    ).stdout
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    failed = re.search(r"(\d+) failed", out)
    if not match:
        raise RuntimeError(f"h2load failed:\n{out}")
    if failed and int(failed[1]):
        print(f"  ({failed[1]} of {requests} requests failed: req/s counts the rest)")
    succeeded = re.search(r"(\d+) succeeded", out)
    return float(match[1]), int(succeeded[1]) if succeeded else requests


def servers(port: int, venv: Path) -> dict[str, list[str]]:
    python = sys.executable
    found = {
        "thor-native": [python, "apps/hello_thor.py", "127.0.0.1", str(port)],
        "gateway-asgi": [
            python,
            "-m",
            "thor_gateway",
            "apps.hello_asgi:app",
            "-b",
            f"127.0.0.1:{port}",
            "--lifespan",
            "off",
        ],
    }
    hypercorn, granian = venv / "bin" / "hypercorn", venv / "bin" / "granian"
    if hypercorn.exists():
        found["hypercorn"] = [str(hypercorn), "-b", f"127.0.0.1:{port}", "apps.hello_asgi:app"]
    if granian.exists():
        found["granian"] = [
            str(granian),
            "--interface",
            "asgi",
            "--http",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ws",
            "apps.hello_asgi:app",
        ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/h2bench"))
    args = parser.parse_args()
    for tool in ("h2load", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install nghttp2-client util-linux)")
    results: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}
    for name in servers(0, args.venv):
        port = free_port()
        command = servers(port, args.venv)[name]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            ["taskset", "-c", "0", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port, 60.0)
            h2load(port, LOADS["c16m10"], 2000)  # warm up
            runs = [(load, flags, False) for load, flags in LOADS.items()]
            if name in ("thor-native", "gateway-asgi"):
                runs.append(("h1-c16m10", LOADS["c16m10"], True))
            for load, flags, h1 in runs:
                before = cpu_seconds(process.pid)
                try:
                    rps, done = h2load(port, flags, args.requests, h1=h1)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    print(f"{name:14} {load:10} failed: {str(error)[:200]}", flush=True)
                    continue
                used = cpu_seconds(process.pid) - before
                results[name, load] = rps
                cpu[name, load] = used * 1e6 / max(done, 1)
                print(
                    f"{name:14} {load:10} {rps:10.0f} req/s {cpu[name, load]:8.1f} us CPU/request",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(10)
    report(results, cpu)


def report(results: dict[tuple[str, str], float], cpu: dict[tuple[str, str], float]) -> None:
    """Thor's ratios to each other server: requests per second, and per CPU-second."""
    others = sorted({name for name, _ in results} - {"thor-native", "gateway-asgi"})
    for ours in ("thor-native", "gateway-asgi"):
        for other in others:
            for load in LOADS:
                if (ours, load) in results and (other, load) in results:
                    ratio = results[ours, load] / results[other, load]
                    print(f"{ours} / {other} at {load}: {ratio:.2f}x req/s", end="")
                    if cpu.get((ours, load)) and cpu.get((other, load)):
                        print(f", {cpu[other, load] / cpu[ours, load]:.2f}x per CPU-second")
                    else:
                        print()
        if (ours, "h1-c16m10") in cpu:
            ratio = cpu[ours, "h1-c16m10"] / cpu[ours, "c16m10"]
            print(f"{ours}: requests per CPU-second, h2c / HTTP/1.1 at c16m10: {ratio:.2f}x")


if __name__ == "__main__":
    main()
