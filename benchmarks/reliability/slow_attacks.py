"""Slow-header, slow-body and slow-read attacks on each route, with a probe (issue 16).

    python benchmarks/reliability/slow_attacks.py [--conns 1000] [--seconds 30]
        [--attacks H,B,X] [--routes wsgi,asgi,proxy] [--probe-interval 0.2] [--rate 200]
        [--server thor|uvicorn|gunicorn|waitress|nginx]

For each attack and route: starts ``thor-gateway`` from this tree (one worker, default
settings) with a WSGI route (/wsgi), an ASGI route (/asgi) and a proxy route (/proxy, to a
Thor origin), runs ``slowhttptest`` against the route with ``--conns`` connections
(``-H`` slow headers; ``-B`` a slow POST body; ``-X`` slow reads of the route's 1 MiB
response), probes the same route with a fresh GET every ``--probe-interval`` seconds, and
samples the gateway's resident memory. Prints per run: probes answered, p50/p99 probe
latency, the gateway's RSS before and at its peak, and from slowhttptest's statistics the
most connections it held open at once and when the server first cut one, and the gateway's
own count of established connections (slowhttptest misses resets during -X) (the limits:
``--header-timeout`` 10 s; ``--min-body-rate`` / ``--min-response-rate`` 240 B/s over
``--min-rate-window`` 5 s; ``--write-timeout`` 30 s).

``--server`` runs the same attacks on a peer instead (``peers.py``: uvicorn on /asgi,
gunicorn and waitress on /wsgi, nginx on /proxy), with its own defaults; RSS and CPU are
those of the server's process tree (master and workers).

Needs ``slowhttptest`` (``apt-get install slowhttptest``); raises the soft descriptor limit.
Targets: every probe answered, p99 under 100 ms, slow-read peak RSS under 100 MB.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_under_test import Probe, RssSampler, raise_fd_limit, tree_cpu_seconds
from peers import SERVERS, check_installed, server

# slowhttptest flags per attack: -i seconds between follow-up pieces, -x their size bound.
ATTACKS = {
    "H": ["-H", "-i", "5", "-x", "24"],  # Slowloris: a header line every 5 s, never the end
    "B": ["-B", "-i", "5", "-x", "10", "-s", "65536"],  # a 64 KiB body, a few bytes every 5 s
    "X": ["-X", "-k", "1", "-n", "1", "-w", "512", "-y", "1024", "-z", "32"],  # slow reads
}
NAMES = {"H": "slow headers", "B": "slow body", "X": "slow read of 1 MiB"}


def cut_stats(csv_path: Path) -> str:
    """From slowhttptest's CSV (seconds, closed, pending, connected, service available)."""
    try:
        rows = list(csv.reader(csv_path.open()))[1:]
    except OSError:
        return "no slowhttptest statistics"
    rows = [[int(x) for x in row[:4]] for row in rows if row and row[0].isdigit()]
    if not rows:
        return "no slowhttptest statistics"
    peak = max(r[3] for r in rows)
    first_cut = next((r[0] for r in rows if r[1] > 0), None)
    last = rows[-1]
    when = f"first cut at {first_cut} s" if first_cut is not None else "none cut"
    return (
        f"slow conns: peak {peak} open, {when}, at {last[0]} s {last[3]} open / "
        f"{last[1]} closed by the server"
    )


class ServerSide(threading.Thread):
    """The gateway's established connections on ``port``, from /proc/net/tcp once a second.

    slowhttptest's own count does not see a reset during a slow read (it goes on counting
    the connection as open), so whether the server cut the slow readers is read here."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = f":{port:04X}"
        self.counts: list[int] = []
        self.done = threading.Event()

    def count(self) -> int:
        n = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[1].endswith(self.port) and fields[3] == "01":  # ESTABLISHED
                    n += 1
        return n

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.counts.append(self.count())

    def stop(self) -> str:
        self.done.set()
        self.join(5)
        counts = self.counts or [0]
        peak = max(counts)
        at = counts.index(peak)
        cut = next((i + 1 for i in range(at, len(counts)) if counts[i] <= peak // 10), None)
        when = f"under 10 % of it at {cut} s" if cut is not None else "never under 10 % of it"
        return (
            f"server side: peak {peak} established at {at + 1} s, {when}, {counts[-1]} at the end"
        )


def run(attack: str, route: str, args: argparse.Namespace, workdir: Path) -> str:
    with server(args.server, workdir) as gw:
        time.sleep(1.0)  # a forking server's worker has started
        path = f"/{route}/big" if attack == "X" else f"/{route}/"
        rss = RssSampler(gw.proc.pid)
        probe = Probe(gw.port, f"/{route}/", args.probe_interval)
        stats = workdir / f"stats-{attack}-{route}"
        command = ["slowhttptest", "-c", str(args.conns), "-r", str(args.rate)]
        command += ["-l", str(args.seconds), "-u", gw.url(route, path[len(route) + 1 :])]
        command += ["-g", "-o", str(stats), "-p", "3", *ATTACKS[attack]]
        cpu = tree_cpu_seconds(gw.proc.pid)
        server_side = ServerSide(gw.port)
        rss.start()
        probe.start()
        server_side.start()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        probe.stop()
        held = server_side.stop()
        after = rss.stop()
        cpu = tree_cpu_seconds(gw.proc.pid) - cpu
    return (
        f"{args.server} {NAMES[attack]:>20} on /{route:<5}: {probe.summary()}; RSS "
        f"{rss.before / 1024:.1f} MB before, peak {rss.peak / 1024:.1f} MB, {after / 1024:.1f} MB "
        f"after; server CPU {cpu:.1f} s; " + cut_stats(stats.with_suffix(".csv")) + f"; {held}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=200, help="new slow connections per second")
    parser.add_argument("--attacks", default="H,B,X")
    parser.add_argument("--routes", help="default: all the server's (thor: wsgi,asgi,proxy)")
    parser.add_argument("--probe-interval", type=float, default=0.2)
    parser.add_argument("--server", choices=SERVERS, default="thor")
    args = parser.parse_args()
    routes = args.routes.split(",") if args.routes else list(SERVERS[args.server])
    if unknown := set(routes) - set(SERVERS[args.server]):
        parser.error(f"{args.server} has no route {', '.join(sorted(unknown))}")
    check_installed(args.server)
    if shutil.which("slowhttptest") is None:
        raise SystemExit("slowhttptest is not installed (apt-get install slowhttptest)")
    raise_fd_limit(args.conns * 3 + 1024)  # slowhttptest, the gateway and its upstreams
    print(f"{args.conns} connections per attack, {args.seconds} s each", flush=True)
    for attack in args.attacks.split(","):
        for route in routes:
            with tempfile.TemporaryDirectory() as workdir:
                print(run(attack, route, args, Path(workdir)), flush=True)


if __name__ == "__main__":
    main()
