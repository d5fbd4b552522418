"""What the reliability scripts share: the apps, a gateway with a WSGI, an ASGI and a proxy
route, a probe, and resident-memory samples. Loopback only; Linux (reads /proc). The peers
run on the same apps are in ``peers.py``."""

from __future__ import annotations

import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import cpu_seconds, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]

# The same app behind every route: a small answer, or the SAME 1 MiB object at .../big (so a
# per-connection copy would show in memory); request bodies are read whole.
APPS = """
BIG = b"x" * (1 << 20)
SMALL = b"ok\\n"


def wsgi(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read()
    body = BIG if environ["PATH_INFO"].endswith("/big") else SMALL
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
        if message["type"] == "http.disconnect":
            return
    body = BIG if scope["path"].endswith("/big") else SMALL
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""

CONFIG = """
bind = ["127.0.0.1:{port}"]
{extra}

[[mount]]
prefix = "/wsgi"
app = "reliability_apps:wsgi"
interface = "wsgi"

[[mount]]
prefix = "/asgi"
app = "reliability_apps:asgi"
interface = "asgi"

[[proxy]]
prefix = "/proxy"
upstreams = ["http://127.0.0.1:{origin}"]
"""

ROUTES = ("wsgi", "asgi", "proxy")
PYTHON_GATEWAY = (sys.executable, "-m", "thor_gateway")


def raise_fd_limit(need: int) -> int:
    """Raise the soft descriptor limit to at least ``need`` (up to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def rss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match[1]) if match else 0


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a master and its workers: gunicorn, nginx, Thor's -w N)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            tasks = Path(f"/proc/{pids[i]}/task").iterdir()
            pids += [int(c) for t in tasks for c in (t / "children").read_text().split()]
        except OSError:
            pass
        i += 1
    return pids


def tree_rss_kib(pid: int) -> int:
    """The resident memory of ``pid`` and its descendants, summed (shared pages counted in
    each process, as ``ps`` does)."""
    return sum(rss_kib(p) for p in tree(pid))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living descendants."""
    return sum(cpu_seconds(p) for p in tree(pid))


def start_origin(env: dict[str, str], log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    """The proxy routes' upstream: Thor (from this tree) serving the WSGI app; its process
    and port, once it listens."""
    port = free_port()
    origin = subprocess.Popen(
        [*PYTHON_GATEWAY, "reliability_apps:wsgi", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for(port, 90)  # generous: a loaded machine starts Python slowly
    return origin, port


def apps_env(workdir: Path) -> dict[str, str]:
    """Write the apps module into ``workdir``; the environment that imports it (and Thor)."""
    (workdir / "reliability_apps.py").write_text(APPS)
    return {**os.environ, "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}"}


class Gateway:
    """thor-gateway (from this tree) with the three routes, and a Thor origin for the proxy."""

    def __init__(self, workdir: Path, extra_config: str = "", log_name: str = "gateway") -> None:
        env = apps_env(workdir)
        self.port = free_port()
        self.log = workdir / f"{log_name}.log"
        with self.log.open("wb") as log:
            self.origin, origin = start_origin(env, log)
            config = workdir / "gateway.toml"
            config.write_text(CONFIG.format(port=self.port, origin=origin, extra=extra_config))
            self.proc = subprocess.Popen(
                [*PYTHON_GATEWAY, "-c", str(config)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(self.port, 90)

    def url(self, route: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}/{route}{path}"

    def stop(self) -> None:
        for proc in (self.proc, self.origin):
            proc.terminate()
        for proc in (self.proc, self.origin):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def get(port: int, path: str, timeout: float) -> int:
    """One GET on a new connection, read to the end of its body; the status (0: failed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode()
            )
            data = bytearray()
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return 0
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(match[1]) if match else 0


class Probe(threading.Thread):
    """GET ``path`` every ``interval`` seconds until stopped; keeps status and latency."""

    def __init__(self, port: int, path: str, interval: float, timeout: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.interval, self.timeout = port, path, interval, timeout
        self.results: list[tuple[int, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            start = time.perf_counter()
            status = get(self.port, self.path, self.timeout)
            self.results.append((status, time.perf_counter() - start))

    def stop(self) -> None:
        self.done.set()
        self.join(self.timeout + 1)

    def summary(self) -> str:
        ok = sorted(t for status, t in self.results if status == 200)
        if not ok:
            return f"probes 0/{len(self.results)} answered"
        p50, p99 = ok[len(ok) // 2], ok[min(len(ok) - 1, int(len(ok) * 0.99))]
        return (
            f"probes {len(ok)}/{len(self.results)} answered, "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ok[-1] * 1000:.1f} ms"
        )


class RssSampler(threading.Thread):
    """The peak resident memory of ``pid`` and its workers, sampled every 0.1 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.before = tree_rss_kib(pid)
        self.peak = self.before
        self.samples: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            rss = tree_rss_kib(self.pid)
            self.samples.append(rss)
            self.peak = max(self.peak, rss)

    def stop(self) -> int:
        self.done.set()
        self.join(2)
        return tree_rss_kib(self.pid)
