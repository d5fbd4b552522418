"""Static files: thor-gateway's ``--static`` against nginx and granian, on 1 KiB and 1 MiB.

Usage::

    python benchmarks/static_files.py [--seconds 5] [--connections 64] [--granian PATH]

Each server in turn is pinned to CPU 0 (``taskset -c 0``) and serves one folder holding a
1 KiB and a 1 MiB file; ``wrk -t1 -c64`` runs on CPU 1 against each file.  Printed: requests
per second and megabytes per second for each (server, file), and thor-gateway's ratio to
each other server.  One process each: nginx with ``worker_processes 1`` and ``sendfile on``,
granian with one worker and its static mount (``--static-path-mount``; the app behind it is
never called), thor-gateway with one process.

nginx is Debian's package (``apt-get install -y nginx``); granian is looked for as
``--granian``, on PATH, or skipped: install it in a throwaway venv
(``python -m venv /tmp/g && /tmp/g/bin/pip install granian``), never in the project.
Needs Linux, ``wrk`` and ``taskset``; loopback only.  Run by hand: the numbers depend on
the machine, and on whatever else shares its CPUs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import free_port, wait_for

FILES = {"1KiB": 1024, "1MiB": 1024 * 1024}

NGINX = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {root}/; }}
    }}
}}
"""

# granian needs an app; its static mount answers /static/* before the app is called.
GRANIAN_APP = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def wrk(url: str, connections: int, seconds: float) -> tuple[float, float]:
    """(requests per second, megabytes per second) of ``seconds`` of wrk load."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    count = errors = 0
    for line in out.splitlines():
        if "requests in" in line:
            count = int(line.split()[0])
        if "Non-2xx" in line or "Socket errors" in line:
            errors += 1
    if not count:
        raise SystemExit(f"wrk printed no count:\n{out}")
    if errors:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    rate = count / seconds
    return rate, rate * size_of(url) / 1e6


def size_of(url: str) -> int:
    return FILES[url.rsplit("/", 1)[1].split(".")[0]]


def commands(scratch: Path, root: Path, port: int, granian: str | None) -> dict[str, list[str]]:
    found = {
        "thor": [
            sys.executable, "-m", "thor_gateway", "--bind", f"127.0.0.1:{port}",
            "--static", f"/static={root}", "--log-level", "warning",
        ],
    }  # fmt: skip
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is not None:
        conf = scratch / "nginx.conf"
        conf.write_text(NGINX.format(dir=scratch, port=port, root=root))
        found["nginx"] = [nginx, "-e", "stderr", "-c", str(conf)]
    if granian is not None:
        (scratch / "granian_app.py").write_text(GRANIAN_APP)
        found["granian"] = [
            granian, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-ws", "--log-level", "warning",
            "--static-path-route", "/static", "--static-path-mount", str(root),
            "--working-dir", str(scratch), "granian_app:app",
        ]  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--granian", default=shutil.which("granian"), help="granian's path")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average before: {load} (other work may share these CPUs)")
    results: dict[tuple[str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)  # nginx's worker runs as another user when started as root
        root = scratch / "public"
        root.mkdir(mode=0o755)
        for name, size in FILES.items():
            (root / f"{name}.bin").write_bytes(os.urandom(size))
        port = free_port()
        for server, cmd in commands(scratch, root, port, args.granian).items():
            process = subprocess.Popen(["taskset", "-c", "0", *cmd], cwd=Path(__file__).parents[1])
            try:
                wait_for(port)
                for name in FILES:
                    url = f"http://127.0.0.1:{port}/static/{name}.bin"
                    wrk(url, args.connections, 1)  # warm-up
                    results[server, name] = wrk(url, args.connections, args.seconds)
                    rate, mb = results[server, name]
                    print(f"{server:8} {name:5} {rate:10,.0f} req/s {mb:9,.1f} MB/s", flush=True)
            finally:
                process.terminate()
                process.wait(10)
            time.sleep(0.5)  # the port is free again
    print()
    for other in ("nginx", "granian"):
        for name in FILES:
            if (other, name) in results:
                ratio = results["thor", name][0] / results[other, name][0]
                print(f"thor / {other:7} {name:5} {ratio:5.2f}")


if __name__ == "__main__":
    main()
