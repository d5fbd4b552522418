"""Reloads and stops under load: failed requests across SIGHUP and SIGTERM (issue 16, point 3).

    python benchmarks/reliability/signals_under_load.py [--routes wsgi,asgi,proxy]
        [--seconds 10] [--connections 32] [--workers 2] [--root DIR] [--server thor]
        [-- GATEWAY ARGS...]

For each route (a WSGI hello, an ASGI hello, and a proxy to a Thor origin) a fresh
``python -m thor_gateway -w 2`` is started (from ``--root``, default this tree, so two trees
can be compared) and ``wrk -c32`` loads that route in two phases:

- **reload**: wrk for ``--seconds`` with a SIGHUP to the master at 25 % and another at 55 %
  of it (each replaces both workers, one at a time).  Every error counts: the listening
  socket is shared and new workers listen before old ones stop, so nothing may be refused,
  reset or left unanswered.  (This wrk counts any close of a kept-alive connection
  without ``Connection: close`` as a read error, even with no request on it: before the
  fix each idle connection a retiring worker closed was one, 33 to 77 per run.)
- **stop**: wrk again; SIGTERM to the master after a second, wrk is interrupted as soon as
  the gateway has exited.  Read, write and timeout errors and non-2xx answers count as
  failures: a request that reached the gateway, or a keep-alive connection it had
  accepted, must be answered.  Refused connections are not: once the master is told to
  stop, the listening socket closes, and a client that connects after that (wrk
  reconnects each connection the gateway answered with ``Connection: close``) is refused
  before sending anything.  wrk connects without blocking, so it counts a refusal as a
  *write* error; this phase runs wrk under ``strace`` (if installed) to tell them apart:
  the failed ``write()`` calls with ECONNREFUSED are the ``refused`` column.

``--server gunicorn`` (sync worker, ``apps.hello_wsgi``, on /wsgi) or ``--server uvicorn``
(``--workers``, ``apps.hello_asgi``, on /asgi; its supervisor replaces the workers one at a
time on SIGHUP) runs the same phases on a peer, with its defaults (no access log, as Thor
here).

Prints wrk's socket errors and non-2xx count per phase and route, and exits 1 if any
phase failed.  Needs ``wrk`` on PATH; loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import free_port, wait_for

ROUTES = {"wsgi": "/wsgi/", "asgi": "/asgi/", "proxy": "/proxy/"}
# Per server: its routes, and the log line of a worker starting (one per worker).
SERVERS = {
    "thor": (("wsgi", "asgi", "proxy"), r"worker \d+ is listening"),
    "gunicorn": (("wsgi",), r"Booting worker with pid: \d+"),
    "uvicorn": (("asgi",), r"Started server process \[\d+\]"),
}
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_REQUESTS = re.compile(r"(\d+) requests in")


@dataclass
class Phase:
    """wrk's figures for one phase."""

    name: str
    requests: int = 0
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0
    non_2xx: int = 0
    refused: int = 0  # write errors that were refused connections (after the stop)
    notes: list[str] = field(default_factory=list)

    def failures(self) -> int:
        lost = self.read + self.write - self.refused + self.timeout + self.non_2xx
        return lost + (self.connect + self.refused if self.name == "reload" else 0)


def parse_wrk(name: str, text: str) -> Phase:
    phase = Phase(name)
    if match := WRK_REQUESTS.search(text):
        phase.requests = int(match[1])
    else:
        phase.notes.append("no wrk summary: " + text.strip()[-200:])
    if match := WRK_ERRORS.search(text):
        phase.connect, phase.read, phase.write, phase.timeout = map(int, match.groups())
    if match := WRK_NON_2XX.search(text):
        phase.non_2xx = int(match[1])
    return phase


class Gateway:
    """The server under test (thor_gateway, or a peer: ``server``), a master with
    ``--workers`` workers; its log kept."""

    def __init__(self, root: Path, args: list[str], log_path: Path, server: str = "thor") -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log = log_path.open("ab")
        self.listening = SERVERS[server][1]
        bind = ["-b", f"127.0.0.1:{self.port}"]
        if server == "uvicorn":
            bind = ["--host", "127.0.0.1", "--port", str(self.port)]
        module = "thor_gateway" if server == "thor" else server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *bind, *args],
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        self.log_path = log_path

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_path.read_text("utf-8", "replace")))

    def wait_lines(self, pattern: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(pattern) >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


def run_wrk(
    url: str, seconds: float, connections: int, threads: int, trace: Path | None = None
) -> subprocess.Popen[str]:
    """wrk on ``url``; with ``trace``, under strace, which writes the failed write() calls
    there (seccomp-bpf: only write() is stopped, so wrk slows little)."""
    strace = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=write", "-e", "status=failed"]
    prefix = [*strace, "-o", str(trace)] if trace is not None else []
    return subprocess.Popen(
        [*prefix, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def reload_phase(gateway: Gateway, url: str, args: argparse.Namespace) -> Phase:
    workers = args.workers
    wrk = run_wrk(url, args.seconds, args.connections, args.threads)
    started = time.monotonic()
    listening = workers
    for at in (0.25, 0.55):
        time.sleep(max(0.0, started + at * args.seconds - time.monotonic()))
        gateway.proc.send_signal(signal.SIGHUP)
        listening += workers
        # Both replacements done before the next signal (a SIGHUP during one is queued).
        gateway.wait_lines(gateway.listening, listening, args.seconds)
    out, _ = wrk.communicate(timeout=args.seconds + 30)
    phase = parse_wrk("reload", out)
    if gateway.count(gateway.listening) < 3 * workers:
        phase.notes.append("not every worker was replaced in time")
    return phase


def stop_phase(gateway: Gateway, url: str, args: argparse.Namespace, log_dir: Path) -> Phase:
    trace = log_dir / "wrk-stop.strace" if shutil.which("strace") else None
    wrk = run_wrk(url, args.seconds, args.connections, args.threads, trace)
    time.sleep(1.0)
    gateway.proc.send_signal(signal.SIGTERM)
    try:
        code = gateway.proc.wait(args.seconds + 30)
    except subprocess.TimeoutExpired:
        code = None
    if wrk.poll() is None:  # wrk prints its summary on SIGINT (to wrk, not to strace)
        for pid in _children(wrk.pid) if trace is not None else [wrk.pid]:
            os.kill(pid, signal.SIGINT)
    out, _ = wrk.communicate(timeout=30)
    phase = parse_wrk("stop", out)
    if trace is None:
        phase.notes.append("no strace: write errors not told apart from refused reconnects")
        phase.refused = phase.write
    else:
        # wrk connects without blocking, so a refused connection fails at its first write.
        failed_writes = trace.read_text("utf-8", "replace").splitlines()
        phase.refused = sum("ECONNREFUSED" in line for line in failed_writes)
    if code != 0:
        phase.notes.append(f"gateway exit status {code}")
    return phase


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def start_origin(root: Path, log_dir: Path) -> Gateway:
    """The proxy route's upstream: one Thor process whose keep-alive outlasts the run."""
    origin = Gateway(
        root,
        ["apps.hello_wsgi:app", "--keep-alive", "300", "--no-access-log"],
        log_dir / "origin.log",
    )
    wait_for(origin.port)
    return origin


def server_args(origin_port: int, args: argparse.Namespace) -> list[str]:
    """The command-line arguments after the bind address, per server."""
    if args.server == "gunicorn":
        return ["-w", str(args.workers), "apps.hello_wsgi:app", *args.gateway_args]
    if args.server == "uvicorn":
        workers = ["--workers", str(args.workers), "--no-access-log"]
        return ["apps.hello_asgi:app", *workers, *args.gateway_args]
    return [
        "--mount",
        "/wsgi=apps.hello_wsgi:app",
        "--mount",
        "/asgi=apps.hello_asgi:app",
        "--proxy",
        f"/proxy=http://127.0.0.1:{origin_port}",
        "--workers",
        str(args.workers),
        "--no-access-log",
        "--graceful-timeout",
        "10",
        *args.gateway_args,
    ]


def one_route(route: str, origin_port: int, args: argparse.Namespace, log_dir: Path) -> list[Phase]:
    gateway_args = server_args(origin_port, args)
    log = log_dir / f"{args.server}-{route}.log"
    gateway = Gateway(args.root, gateway_args, log, args.server)
    try:
        if not gateway.wait_lines(gateway.listening, args.workers, 20):
            raise SystemExit(f"the gateway did not start; see {gateway.log_path}")
        url = f"http://127.0.0.1:{gateway.port}{ROUTES[route]}"
        return [reload_phase(gateway, url, args), stop_phase(gateway, url, args, log_dir)]
    finally:
        gateway.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", help="default: all the server's (thor: wsgi,asgi,proxy)")
    parser.add_argument("--server", choices=SERVERS, default="thor")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--logs", type=Path, help="keep the gateways' logs in this folder")
    parser.add_argument("gateway_args", nargs="*")
    args = parser.parse_args()
    own = SERVERS[args.server][0]
    routes = [r for r in args.routes.split(",") if r] if args.routes else list(own)
    for route in routes:
        if route not in own:
            parser.error(f"unknown route {route!r}; choose from {', '.join(own)}")
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = args.logs or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        origin = start_origin(args.root, log_dir) if "proxy" in routes else None
        failed = 0
        print(
            f"{'route':6} {'phase':7} {'requests':>9} {'connect':>8} {'read':>5} "
            f"{'write':>5} {'refused':>7} {'timeout':>7} {'non-2xx':>7} {'failed':>6}"
        )
        try:
            for route in routes:
                for phase in one_route(route, origin.port if origin else 0, args, log_dir):
                    failed += phase.failures()
                    print(
                        f"{route:6} {phase.name:7} {phase.requests:9d} {phase.connect:8d} "
                        f"{phase.read:5d} {phase.write:5d} {phase.refused:7d} {phase.timeout:7d} "
                        f"{phase.non_2xx:7d} {phase.failures():6d}",
                        flush=True,
                    )
                    for note in phase.notes:
                        print(f"       note: {note}")
        finally:
            if origin is not None:
                origin.close()
    print(
        "refused: wrk's write errors that were connections refused (ECONNREFUSED), which\n"
        "after SIGTERM are new connections made once the gateway stopped listening (not\n"
        "failures); any other error is a failed request.  failed: the sum of those."
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
