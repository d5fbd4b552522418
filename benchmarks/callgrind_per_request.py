"""Instructions per request under callgrind, for two checkouts side by side (run by hand).

    python benchmarks/callgrind_per_request.py --before /work/before --after .
    python benchmarks/callgrind_per_request.py --paths native,wsgi --low 200 --high 1200

Wall-clock rates on a shared machine swing by tens of percent; instruction counts do not. For
each path and checkout, the server runs twice under ``valgrind --tool=callgrind`` and a raw-socket
client sends it ``--low`` and then ``--high`` sequential requests on one kept-alive connection.
The difference of the two totals, divided by ``high - low``, is what one request costs in
user-space instructions, with startup and shutdown cancelled out.

``--connections N`` spreads the requests over N kept-alive connections, each sending its next
request when its last answer is complete (as ``wrk -cN`` does): the server then has N requests
in flight, and the aggregate path N fan-outs over the client's pool, which one sequential
connection never exercises.  Expect a few per cent of run-to-run variation there (how events
batch per ``epoll_wait`` depends on timing); compare sides with ``--low`` and ``--high`` large.

Paths:
    native     thor.http.server.HttpServer answering 13 bytes (the bench's hello_thor.py)
    wsgi       thor-gateway serving a WSGI hello
    asgi       thor-gateway serving an ASGI hello
    proxy      thor-gateway ``--proxy /=ORIGIN``; the origin answers 1 KiB
    aggregate  thor-gateway serving an Aggregator of three backend calls

The origin (proxy, aggregate) is a plain-socket server in this process, not under callgrind.
The apps are written to a scratch folder so both checkouts run the same app code, and each
server runs ``python -P`` with PYTHONPATH set to the checkout: the checkout's code is imported,
whatever the current folder holds.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from support import free_port

APPS = {
    "native_hello.py": """
import sys
import thor
from thor.http import HttpServer

BODY = b"Hello, world!"
HEADERS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")]


def on_exchange(exchange):
    @thor.on(exchange)
    def request_done(trailers):
        exchange.response_start(b"200", b"OK", HEADERS)
        exchange.response_body(BODY)
        exchange.response_done([])


server = HttpServer(sys.argv[1].encode(), int(sys.argv[2]))
server.on("exchange", on_exchange)
thor.run()
""",
    "hello_wsgi.py": """
BODY = b"Hello, world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
""",
    "hello_asgi.py": """
BODY = b"Hello, world!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
END = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(END)
""",
    "aggregate_app.py": """
import os
from thor_gateway.aggregation import Aggregator, Call

BASE = os.environ["BENCH_ORIGIN"]
CALLS = {path: Call(BASE + path) for path in ("/a.json", "/b.json", "/c.json")}
app = Aggregator(lambda request: CALLS, deadline=5.0, require_all=True)
""",
}

ORIGIN_BODIES = {
    b"/": (b"text/plain", b"x" * 1024),
    b"/a.json": (b"application/json", b'{"a": 1}'),
    b"/b.json": (b"application/json", b'{"b": 2}'),
    b"/c.json": (b"application/json", b'{"c": 3}'),
}
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: callgrind-bench\r\nAccept: */*\r\n\r\n"
PATHS = ("native", "wsgi", "asgi", "proxy", "aggregate")
START_TIMEOUT = 900.0  # a gateway under callgrind on a busy machine starts in minutes


def origin_connection(conn: socket.socket) -> None:
    """Answer each request head on ``conn`` from ORIGIN_BODIES, keeping the connection alive."""
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            ctype, body = ORIGIN_BODIES.get(target, (b"text/plain", b"not found"))
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (ctype, len(body), body)
            )


def start_origin() -> int:
    """A threaded keep-alive origin on a free port; returns the port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=origin_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return int(listener.getsockname()[1])


def read_response(sock: socket.socket, buf: bytes) -> bytes:
    """Read one Content-Length-framed or chunked response; return what follows it."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("server closed the connection")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"unexpected response: {head[:200]!r}")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if match:
        length = int(match.group(1))
        while len(buf) < length:
            buf += sock.recv(65536)
        return buf[length:]
    while b"0\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    return buf.partition(b"0\r\n\r\n")[2]


def concurrent_requests(port: int, connections: int, count: int) -> None:
    """Send ``count`` requests over ``connections`` connections, each one at a time."""
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    unread: dict[socket.socket, bytes] = {}
    sent = done = 0
    try:
        for _ in range(min(connections, count)):
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            socks.append(sock)
            sock.setblocking(False)
            sock.sendall(REQUEST)
            sent += 1
            unread[sock] = b""
            sel.register(sock, selectors.EVENT_READ, sock)
        while done < count:
            ready = sel.select(120)
            if not ready:
                raise SystemExit(f"no answer in 120 s ({done} of {count} done)")
            for key, _ in ready:
                sock = key.data
                data = sock.recv(65536)
                if not data:
                    raise SystemExit("server closed a connection")
                unread[sock], answered = complete_responses(unread[sock] + data)
                done += answered
                for _ in range(min(answered, count - sent)):
                    sock.sendall(REQUEST)
                    sent += 1
    finally:
        sel.close()
        for sock in socks:
            sock.close()


def complete_responses(buf: bytes) -> tuple[bytes, int]:
    """Count the complete 200 responses at the start of ``buf``; return the rest and the count."""
    count = 0
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return buf, count
        head = buf[:end]
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected response: {head[:200]!r}")
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if match:
            stop = end + 4 + int(match.group(1))
            if len(buf) < stop:
                return buf, count
        else:
            last = buf.find(b"0\r\n\r\n", end + 4)
            if last < 0:
                return buf, count
            stop = last + 5
        buf = buf[stop:]
        count += 1


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once the server answers a request (it starts slowly under callgrind).

    A gateway may listen before its apps are loaded; a probe on its own connection, not the
    measured one, waits for that.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as probe:
                probe.sendall(REQUEST)
                read_response(probe, b"")
                return
        except (OSError, SystemExit):
            time.sleep(0.5)
    raise SystemExit(f"no answer on port {port} after {START_TIMEOUT}s")


def server_command(path: str, port: int, origin: int) -> list[str]:
    bind = ["--bind", f"127.0.0.1:{port}"]
    gateway = ["-m", "thor_gateway", *bind]
    return {
        "native": ["native_hello.py", "127.0.0.1", str(port)],
        "wsgi": [*gateway, "hello_wsgi:app"],
        "asgi": [*gateway, "hello_asgi:app"],
        "proxy": [*gateway, "--proxy", f"/=http://127.0.0.1:{origin}"],
        "aggregate": [*gateway, "aggregate_app:app"],
    }[path]


def total_instructions(
    python: str,
    checkout: Path,
    scratch: Path,
    path: str,
    origin: int,
    count: int,
    connections: int = 1,
) -> int:
    """Callgrind's total for one server run that answers ``count`` requests."""
    port = free_port()
    out = scratch / f"callgrind.{path}.{count}.{os.getpid()}.out"
    env = dict(os.environ, PYTHONPATH=f"{checkout}{os.pathsep}{scratch}")
    env["BENCH_ORIGIN"] = f"http://127.0.0.1:{origin}"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        python,
        "-P",
        *server_command(path, port, origin),
    ]
    proc = subprocess.Popen(cmd, cwd=scratch, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        if connections > 1:
            concurrent_requests(port, connections, count)
        else:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                rest = b""
                for _ in range(count):
                    sock.sendall(REQUEST)
                    rest = read_response(sock, rest)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = out.read_text(errors="replace")
    out.unlink()
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if not match:
        raise SystemExit(f"no total in callgrind output of {cmd}")
    return int(match.group(1))


def per_request(
    python: str,
    checkout: Path,
    scratch: Path,
    path: str,
    origin: int,
    low: int,
    high: int,
    connections: int = 1,
) -> float:
    small = total_instructions(python, checkout, scratch, path, origin, low, connections)
    large = total_instructions(python, checkout, scratch, path, origin, high, connections)
    return (large - small) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="/work/before", help="checkout measured first")
    parser.add_argument("--after", default=".", help="checkout compared with it")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="comma-separated: " + ",".join(PATHS)
    )
    parser.add_argument("--low", type=int, default=200)
    parser.add_argument("--high", type=int, default=1200)
    parser.add_argument(
        "--connections", type=int, default=1, help="requests in flight at once (default 1)"
    )
    parser.add_argument("--python", default=sys.executable, help="the interpreter the servers run")
    parser.add_argument("--only", choices=("before", "after"), help="measure one checkout")
    args = parser.parse_args()
    origin = start_origin()
    sides = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    if args.only:
        sides = {args.only: sides[args.only]}
    print(f"{'path':<10} " + " ".join(f"{side:>10}" for side in sides) + "   after/before")
    with tempfile.TemporaryDirectory(prefix="callgrind-bench-") as folder:
        scratch = Path(folder)
        for name, source in APPS.items():
            (scratch / name).write_text(source)
        for path in args.paths.split(","):
            costs = {
                side: per_request(
                    args.python,
                    checkout,
                    scratch,
                    path,
                    origin,
                    args.low,
                    args.high,
                    args.connections,
                )
                for side, checkout in sides.items()
            }
            row = f"{path:<10} " + " ".join(f"{cost / 1000:>9.1f}k" for cost in costs.values())
            if len(costs) == 2:
                row += f"   {costs['after'] / costs['before']:.4f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
