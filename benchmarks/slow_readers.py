"""Slow readers of one large WSGI response: the gateway's peak memory (issue 16, finding 2).

    python benchmarks/slow_readers.py [--conns 200] [--seconds 10] [--size 1048576]
                                      [--root DIR] [-- GATEWAY ARGS...]

Starts ``python -m thor_gateway`` (from ``--root``, default this tree, so two trees can be
compared) serving an app that returns the SAME bytes object of ``--size`` bytes to every
request, opens ``--conns`` connections with a small receive buffer, each asks for it and
then reads 1 KiB a second, and samples the gateway's resident memory (VmRSS) every 0.1 s
for ``--seconds``.  Prints the RSS before, the peak, and per connection.  Loopback only;
bounded in time and in connections.  Linux (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = """
BODY = b"x" * {size}


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [BODY]
"""


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match[1]) if match else 0


def start_gateway(
    root: Path, app_dir: str, extra: list[str]
) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "PYTHONPATH": f"{app_dir}{os.pathsep}{root}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "thor_gateway", "slow_reader_app:app", "--port", "0", *extra],
        cwd=root,
        env=env,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        match = re.search(r"Listening at http://[^:]+:(\d+)", line)
        if match:
            return proc, int(match[1])
    proc.kill()
    raise SystemExit("the gateway did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("gateway_args", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as app_dir:
        Path(app_dir, "slow_reader_app.py").write_text(APP.format(size=args.size))
        proc, port = start_gateway(args.root, app_dir, args.gateway_args)
        socks: list[socket.socket] = []
        try:
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            for _ in range(args.conns):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                sock.setblocking(False)
                socks.append(sock)
            peak = before
            end = time.monotonic() + args.seconds
            next_read = time.monotonic()
            while time.monotonic() < end:
                peak = max(peak, rss_kib(proc.pid))
                if time.monotonic() >= next_read:
                    next_read += 1.0
                    for sock in socks:
                        try:
                            sock.recv(1024)
                        except (BlockingIOError, ConnectionError):
                            pass
                time.sleep(0.1)
            after = rss_kib(proc.pid)
        finally:
            for sock in socks:
                sock.close()
            proc.terminate()
            proc.wait(20)
    per_conn = (peak - before) / max(1, args.conns)
    print(
        f"{args.conns} slow readers of {args.size} bytes for {args.seconds:g} s: "
        f"RSS {before / 1024:.1f} MB before, peak {peak / 1024:.1f} MB, "
        f"{after / 1024:.1f} MB at the end; {per_conn:.1f} KiB per connection at the peak"
    )


if __name__ == "__main__":
    main()
