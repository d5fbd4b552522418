"""The Autobahn cases (through the PyPI package ``kosoku``) against the sans-IO core.

TEST-ONLY. A minimal echo server on 127.0.0.1: one thread per connection, plain blocking
sockets, the upgrade request read by hand, then ``thor.websocket.protocol`` for everything
else. The IO WebSocket class comes later; this checks the core alone.

    python tests/websocket/autobahn.py                      # sections 1-7, 10, 12.1, 13.1
    python tests/websocket/autobahn.py -i '*'               # every case (slow: 9.* and 12/13)
    python tests/websocket/autobahn.py -i 6.* -o /tmp/ab    # a subset, reports kept in /tmp/ab
    python tests/websocket/autobahn.py --target native      # apps/ws_echo.py (thor.websocket)
    python tests/websocket/autobahn.py --target gateway     # thor-gateway hosting an ASGI echo
    python tests/websocket/autobahn.py --target proxy       # thor-gateway --proxy before native

It prints the count of each behaviour (OK, NON-STRICT, INFORMATIONAL, FAILED, UNIMPLEMENTED)
and the cases that were not OK/INFORMATIONAL; the exit status is 1 if any was.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from thor.websocket.protocol import (
    BytesMessage,
    CloseReceived,
    Connection,
    DeflateConfig,
    HandshakeError,
    Ping,
    ProtocolError,
    TextMessage,
    accept,
    read_request,
)

ROOT = Path(__file__).resolve().parents[2]
# The servers a --target starts, on a free port given as {port}.
TARGETS = {
    # Keepalive pings off: a ping in a long case is a frame the case did not expect.
    "native": [sys.executable, "apps/ws_echo.py", "127.0.0.1", "{port}", "0"],
    "gateway": [
        sys.executable,
        "-m",
        "thor_gateway",
        "tests.websocket.asgi_echo:app",
        "--bind",
        "127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--ws-ping-interval",
        "0",
    ],
    # Set-up (c): thor-gateway relaying to the native echo, which listens on {upstream}.
    "proxy": [
        sys.executable,
        "-m",
        "thor_gateway",
        "--proxy",
        "/=http://127.0.0.1:{upstream}",
        "--bind",
        "127.0.0.1:{port}",
        "--log-level",
        "warning",
    ],
}
# The targets that need another server behind them: the target it stands in front of.
BEHIND = {"proxy": "native"}
DEFAULT_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*", "12.1.*", "13.1.*"]


def read_head(sock: socket.socket) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    line, *fields = head.split(b"\r\n")
    method, _, version = line.split(b" ")
    headers = [(n.strip(), v.strip()) for n, v in (f.split(b":", 1) for f in fields)]
    return method, version.removeprefix(b"HTTP/"), headers, rest


def serve_one(sock: socket.socket) -> None:
    # Without it, Nagle's algorithm and delayed ACKs hold each small echo ~40 ms: sections
    # 12 and 13 (1,000 round trips a case) take minutes instead of seconds.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with sock:
        method, version, headers, rest = read_head(sock)
        try:
            request = read_request(method, version, headers)
        except HandshakeError as error:
            extra = b"".join(n + b": " + v + b"\r\n" for n, v in error.headers)
            sock.sendall(b"HTTP/1.1 %d x\r\n%sContent-Length: 0\r\n\r\n" % (error.status, extra))
            return
        answer = accept(request, deflate=DeflateConfig())
        fields = b"".join(n + b": " + v + b"\r\n" for n, v in answer.headers)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" + fields + b"\r\n")
        conn = Connection("server", deflate=answer.deflate)
        data = rest
        while True:
            out = []
            for event in conn.receive_data(data) if data else []:
                if isinstance(event, TextMessage):
                    out.append(conn.send_text(event.data))
                elif isinstance(event, BytesMessage):
                    out.append(conn.send_bytes(event.data))
                elif isinstance(event, Ping):
                    out.append(conn.pong(event.payload))
                elif isinstance(event, CloseReceived):
                    sock.sendall(b"".join(out) + conn.close())
                    return  # §7.1.1: the server closes TCP first
                elif isinstance(event, ProtocolError):
                    sock.sendall(b"".join(out) + conn.fail(event.code, event.reason))
                    return
            if out:
                sock.sendall(b"".join(out))
            data = sock.recv(262144)
            if not data:
                return


def serve(listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve_guarded, args=(sock,), daemon=True).start()


def serve_guarded(sock: socket.socket) -> None:
    try:
        serve_one(sock)
    except OSError:
        pass


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def start_target(target: str, port: int, upstream: int = 0) -> subprocess.Popen[bytes]:
    """Start the server of ``target`` on ``port``; return once it accepts connections."""
    command = [part.format(port=port, upstream=upstream) for part in TARGETS[target]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return child
        except OSError:
            if child.poll() is not None:
                break
            time.sleep(0.05)
    child.kill()
    raise SystemExit(f"{target} did not start on port {port}")


def summarize(outdir: Path) -> tuple[collections.Counter[str], list[str]]:
    index = json.loads((outdir / "index.json").read_text())
    counts: collections.Counter[str] = collections.Counter()
    bad = []
    for agent in index.values():
        for case_id, result in agent.items():
            behavior = result["behavior"]
            close = result.get("behaviorClose", "")
            counts[behavior] += 1
            if behavior not in ("OK", "INFORMATIONAL") or close not in ("OK", "INFORMATIONAL"):
                bad.append(f"{case_id}: {behavior} / close {close}")
    return counts, sorted(bad, key=lambda c: [int(p) for p in c.split(":")[0].split(".")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-i", "--include", action="append", help="case globs (kosoku -i)")
    parser.add_argument("-x", "--exclude", action="append", default=[])
    parser.add_argument("-o", "--outdir", help="keep the reports here")
    parser.add_argument("-p", "--parallelism", type=int, default=2)
    parser.add_argument("--target", choices=["core", *TARGETS], default="core")
    args = parser.parse_args()
    kosoku = shutil.which("kosoku")
    if kosoku is None:
        print("kosoku is not installed: pip install kosoku", file=sys.stderr)
        return 2
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    children = []
    if args.target == "core":
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
    else:
        listener.close()  # the port is free again for the child (a race we accept in tests)
        upstream = 0
        if args.target in BEHIND:
            upstream = free_port()
            children.append(start_target(BEHIND[args.target], upstream))
        children.append(start_target(args.target, port, upstream))
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="autobahn-"))
    command = [kosoku, "-m", "fuzzingclient", f"127.0.0.1:{port}", "-o", str(outdir)]
    command += ["-p", str(args.parallelism)]
    for case in args.include or DEFAULT_CASES:
        command += ["-i", case]
    for case in args.exclude:
        command += ["-x", case]
    try:
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL, timeout=3600)
    finally:
        listener.close()
        for child in children:
            child.terminate()
            child.wait(10)
    counts, bad = summarize(outdir)
    print(" ".join(f"{name}={n}" for name, n in sorted(counts.items())), f"reports: {outdir}")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
