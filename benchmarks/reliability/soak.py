"""Soak: minutes of wrk load on each route; memory over time, errors, requests served.

    python benchmarks/reliability/soak.py [--minutes 5] [--routes wsgi,asgi,proxy]
                                          [--connections 64] [--threads 2] [--server thor]

Starts ``thor-gateway`` from this tree (one worker) with the WSGI, ASGI and proxy routes and
runs ``wrk`` for ``--minutes`` against the routes in turn (the time split between them),
sampling the gateway's resident memory once a second (after a 2 s warm-up per route; wrk's
request timeout is ``--timeout``, 5 s, as a shared machine can stall a request for 2).
Prints per route the requests, requests per second (noisy on a shared machine), wrk's
errors (connect, read, write, timeout, non-2xx), and the RSS at the start of the route's
run, after its first tenth (warm) and at its end, with the growth after warm-up.
Targets: no error; memory flat (the growth after warm-up within a few MB). ``--server`` soaks
a peer instead (``peers.py``, its route), the RSS of its process tree.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_under_test import raise_fd_limit, tree_rss_kib
from peers import SERVERS, check_installed, server

ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def soak(port: int, pid: int, route: str, seconds: int, args: argparse.Namespace) -> str:
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append(tree_rss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    url = f"http://127.0.0.1:{port}/{route}/"
    warm_up = ["wrk", "-t", "1", "-c", str(args.connections), "-d", "2s", url]
    subprocess.run(warm_up, capture_output=True, check=False)  # threads, pools, caches
    start_rss = tree_rss_kib(pid)
    sampler.start()
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s"]
    command += ["--timeout", f"{args.timeout}s", url]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    done.set()
    sampler.join(2)
    out = result.stdout
    requests = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = ERRORS.search(out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = "0" if errors is None else "/".join(errors.groups())
    warm = samples[max(0, len(samples) // 10 - 1)] if samples else start_rss
    end = samples[-1] if samples else tree_rss_kib(pid)
    peak = max(samples, default=end)
    return (
        f"/{route:<5} {seconds} s: {requests[1] if requests else '?'} requests "
        f"({float(rate[1]) if rate else 0:,.0f}/s); socket errors (connect/read/write/timeout) "
        f"{socket_errors}, non-2xx {non2xx[1] if non2xx else 0}; RSS {start_rss / 1024:.1f} MB "
        f"at start, {warm / 1024:.1f} MB warm, {end / 1024:.1f} MB at the end (peak "
        f"{peak / 1024:.1f}), growth after warm-up {(end - warm) / 1024:+.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--routes", help="default: all the server's (thor: wsgi,asgi,proxy)")
    parser.add_argument("--server", choices=SERVERS, default="thor")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5, help="wrk's per-request timeout")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    raise_fd_limit(args.connections * 4 + 1024)
    routes = args.routes.split(",") if args.routes else list(SERVERS[args.server])
    if unknown := set(routes) - set(SERVERS[args.server]):
        parser.error(f"{args.server} has no route {', '.join(sorted(unknown))}")
    check_installed(args.server)
    seconds = max(1, int(args.minutes * 60 / len(routes)))
    with tempfile.TemporaryDirectory() as workdir, server(args.server, Path(workdir)) as gw:
        time.sleep(1.0)
        for route in routes:
            print(soak(gw.port, gw.proc.pid, route, seconds, args), flush=True)
        log = gw.log.read_text(errors="replace")
    errors = [line for line in log.splitlines() if "[ERROR]" in line or "Traceback" in line]
    print(
        f"{args.server} log: {len(errors)} error lines"
        + (f"; first: {errors[0]}" if errors else "")
    )


if __name__ == "__main__":
    main()
