"""Instructions per request of the cache's paths, counted by callgrind (issue 15's targets).

Usage::

    python benchmarks/cache_instructions.py [--python PYTHON] [--only NAME ...]

Each scenario runs ``thor-gateway`` under ``valgrind --tool=callgrind`` twice, for 200 and
for 1200 sequential requests on one keep-alive connection from a raw socket; the counts are
dumped after the last response (``callgrind_control --dump``), before the process is told
to stop, and the difference of the two totals over 1000 is what one request costs, start-up
cancelled out.  (Counted to the exit instead, ``miss-u`` would include freeing and
collecting a store grown by a thousand entries: about 10 k instructions a request.)
Instruction counts do not depend on what else runs on the machine (wall-clock rates do).

- ``hello``: ``apps.hello_thor:handler``, the native floor;
- ``hit``: ``--proxy /=ORIGIN --cache``, a fresh stored 1 KiB response;
- ``proxy``: ``--proxy /=ORIGIN``, no cache, the same 1 KiB response;
- ``miss-ns``: ``--proxy /=ORIGIN --cache``, a response with ``Cache-Control: no-store``
  (fetched every time, not stored): compare with ``proxy``;
- ``miss-0``: ``--proxy /=ORIGIN --cache``, a response with ``Cache-Control: max-age=0``
  and no validator: stale at once, so every request fetches it again and stores it in
  place of the stale one (Cache-Status ``fwd=stale``): compare with ``proxy``;
- ``proxy-u`` / ``miss-u``: every request for a new URL, without and with the cache (each
  a miss proper, Cache-Status ``fwd=miss``, fetched and stored): the proxy's own per-URL
  memos miss too, so compare the two.
- ``proxy-v`` / ``miss-v``: a response with an ETag and Last-Modified and ``max-age=0``
  (as nginx serves a static file with ``add_header Cache-Control max-age=0``), without and
  with the cache: the cache validates its stored response on every request, the origin
  answers 304, and the stored response is served (Cache-Status ``fwd=stale;
  fwd-status=304``); the proxy relays the 200 each time.  (``cache_hits.py``'s ``stale 1k``
  is not: its nginx ignores If-Modified-Since, and every validation is answered 200.)
- ``proxy-64k`` / ``miss-0-64k``: ``proxy`` and ``miss-0`` with a 64 KiB body, where relaying
  the body weighs more than the cache's work per response.
- ``proxy-post`` / ``post``: a POST of 3 bytes answered with 1 KiB (no Cache-Control), without
  and with the cache (which passes it on and invalidates the target, RFC 9111 §4.4).

The origin is a Python server outside valgrind (its cost is not counted).  Needs valgrind
(``callgrind_control`` comes with it).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
BODY = b"x" * 1024
LARGE = b"x" * 65536  # the body of a path that ends in -64k
_CONTROL = {"/ns": "no-store", "/m0": "max-age=0", "/m0-64k": "max-age=0", "/v": "max-age=0"}
_TAG = '"5f2b-400"'
_MODIFIED = "Mon, 07 Dec 2026 10:00:00 GMT"


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed ACK

    def do_GET(self) -> None:
        if self.path == "/v" and self.headers.get("If-None-Match") == _TAG:
            # A validation that finds the stored response current (as nginx answers one for
            # a static file: its validators and the added Cache-Control again).
            self.send_response(304)
            self.send_header("Last-Modified", _MODIFIED)
            self.send_header("ETag", _TAG)
            self.send_header("Cache-Control", "max-age=0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Cache-Control", _CONTROL.get(self.path, "max-age=3600"))
        if self.path == "/v":
            self.send_header("Last-Modified", _MODIFIED)
            self.send_header("ETag", _TAG)
        self.send_header("Content-Type", "text/plain")
        body = LARGE if self.path.endswith("-64k") else BODY
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


def _requests(port: int, count: int, unique: bool, path: bytes = b"/1k") -> None:
    post = path == b"/post"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        buffered = b""
        for i in range(count):
            target = b"/u/%d" % i if unique else path
            if post:
                sock.sendall(b"POST /post HTTP/1.1\r\nHost: bench\r\nContent-Length: 3\r\n\r\nabc")
            else:
                sock.sendall(b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % target)
            while b"\r\n\r\n" not in buffered:
                buffered += sock.recv(65536)
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert found, head
            length = int(found.group(1))
            while len(buffered) < length:
                buffered += sock.recv(65536)
            buffered = buffered[length:]


def _instructions(out_dir: Path) -> int:
    """The instructions counted up to the dump taken after the last response (the files
    ``cg.PID.1``): what the process does as it exits is left out."""
    total = 0
    for path in out_dir.glob("cg.*.1"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
                break
    return total


def run(python: str, args: list[str], count: int, unique: bool, path: bytes) -> int:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}/cg.%p",
            python,
            "-P",
            "-m",
            "thor_gateway",
            "-b",
            f"127.0.0.1:{port}",
            *args,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for(port, 400)
            _requests(port, count, unique, path)
            # Counted up to here: freeing a store that grew with the run (miss-u) at exit
            # is no part of a request.
            subprocess.run(
                ["callgrind_control", "--dump", str(server.pid)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=120,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
        return _instructions(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--only", nargs="*", default=None, help="scenario names")
    options = parser.parse_args()
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    origin.daemon_threads = True
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    upstream = f"/=http://127.0.0.1:{origin.server_address[1]}"
    cached = ["--proxy", upstream, "--cache"]
    scenarios = {
        "hello": (["apps.hello_thor:handler"], False, b"/1k"),
        "hit": (cached, False, b"/1k"),
        "proxy": (["--proxy", upstream], False, b"/1k"),
        "miss-ns": (cached, False, b"/ns"),
        "miss-0": (cached, False, b"/m0"),
        "proxy-u": (["--proxy", upstream], True, b""),
        "miss-u": (cached, True, b""),
        "proxy-v": (["--proxy", upstream], False, b"/v"),
        "miss-v": (cached, False, b"/v"),
        "proxy-64k": (["--proxy", upstream], False, b"/1k-64k"),
        "miss-0-64k": (cached, False, b"/m0-64k"),
        "proxy-post": (["--proxy", upstream], False, b"/post"),
        "post": (cached, False, b"/post"),
    }
    for name, (args, unique, path) in scenarios.items():
        if options.only and name not in options.only:
            continue
        few = run(options.python, args, 200, unique, path)
        many = run(options.python, args, 1200, unique, path)
        print(f"{name:8} {(many - few) / 1000:>12,.0f} instructions/request", flush=True)
    origin.shutdown()


if __name__ == "__main__":
    main()
