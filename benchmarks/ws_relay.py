"""WebSocket messages per second through ``thor-gateway --proxy``, against a direct connection.

Usage::

    python benchmarks/ws_relay.py [--seconds 5] [--connections 16] [--no-pin]

Issue 12's target: the proxy relays WebSocket traffic at >= 0.8x the messages per second of
a direct connection.  Two runs, one after the other, with the same client and upstream:

- ``direct``: the client connects to the upstream;
- ``proxied``: the client connects to ``thor-gateway --proxy /=UPSTREAM`` (one worker), which
  relays the handshake and then the bytes (``thor_gateway/proxy/tunnel.py``).

The client (in this process) opens ``--connections`` WebSocket connections, then on each
keeps a window of masked binary frames in flight and counts the frames that come back: at
64 B (64 in flight per connection) and at 64 KiB (4 in flight).  The upstream answers the
handshake (RFC 6455 §4.2.2) and then echoes the bytes as they come.  It does not parse the
frames: neither does the proxy, and a frame parser upstream would add the same cost to both
runs, making the ratio look better than the relay is.  With pinning (the default) the proxy
has CPU 0 and the client and the upstream share CPU 1, in both runs: the question is whether
the relay keeps up with the pair it sits between.  Needs Linux and ``taskset``; loopback only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

from support import cpu_seconds, free_port, wait_for

HERE = Path(__file__).resolve()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
KEY = base64.b64encode(os.urandom(16))

UPSTREAM = r"""
import base64, hashlib, selectors, socket, sys
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
sel = selectors.DefaultSelector()
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=1024)
listener.setblocking(False)
heads, pending = {}, {}

def accept(sock):
    conn, _ = sock.accept()
    conn.setblocking(False)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    heads[conn] = b""
    sel.register(conn, selectors.EVENT_READ, readable)

def send(conn, data):
    data = pending.pop(conn, b"") + data
    try:
        sent = conn.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:  # the client left at the end of a run
        pending.pop(conn, None)
        return
    if sent < len(data):
        pending[conn] = data[sent:]
        sel.modify(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, readable)

def readable(conn, mask):
    if mask & selectors.EVENT_WRITE:
        sel.modify(conn, selectors.EVENT_READ, readable)
        send(conn, b"")
        if not mask & selectors.EVENT_READ:
            return
    try:
        data = conn.recv(262144)
    except ConnectionError:
        data = b""
    if not data:
        sel.unregister(conn)
        conn.close()
        return
    if conn in heads:
        head = heads[conn] + data
        if b"\r\n\r\n" not in head:
            heads[conn] = head
            return
        del heads[conn]
        head, _, data = head.partition(b"\r\n\r\n")
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        accept_value = base64.b64encode(hashlib.sha1(key + GUID).digest())
        send(conn, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_value + b"\r\n\r\n")
        if not data:
            return
    send(conn, data)

sel.register(listener, selectors.EVENT_READ, lambda s, m: accept(s))
while True:
    for key, mask in sel.select():
        key.data(key.fileobj, mask)
"""


def frame(size: int) -> bytes:
    """One masked binary frame from a client (RFC 6455 §5.2), ``size`` bytes of payload."""
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x5a" * size))
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 65536:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return b"\x82" + length + mask + payload


def handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        b"GET /bench HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"no switch: {head[:80]!r}")
    expected = base64.b64encode(hashlib.sha1(KEY + GUID).digest())
    if expected not in head:
        raise SystemExit("wrong Sec-WebSocket-Accept")
    sock.setblocking(False)
    return sock


def run_load(port: int, connections: int, size: int, window: int, seconds: float) -> float:
    """Frames echoed per second over ``seconds``, ``window`` in flight per connection."""
    batch = frame(size) * window
    sel = selectors.DefaultSelector()
    waiting: dict[socket.socket, int] = {}
    for _ in range(connections):
        sock = handshake(port)
        sock.sendall(batch)
        waiting[sock] = len(batch)
        sel.register(sock, selectors.EVENT_READ)
    done = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            sock = key.fileobj  # type: ignore[assignment]
            data = sock.recv(1 << 20)
            if not data:
                raise SystemExit("a connection closed during the run")
            left = waiting[sock] - len(data)
            if left <= 0:
                done += window
                left += len(batch)
                sock.sendall(batch)  # small enough for the kernel's buffer
            waiting[sock] = left
    elapsed = time.monotonic() - started
    for sock in waiting:
        sel.unregister(sock)
        sock.close()
    return done / elapsed


def serving_pid(gateway: subprocess.Popen[bytes]) -> int:
    """The process that serves: the gateway's worker when it forked one, else itself."""
    children = Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if pids else gateway.pid


def pinned(cpu: str, cmd: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if pin else cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {1})  # the client shares CPU 1 with the upstream
    up_port, gw_port = free_port(), free_port()
    upstream = subprocess.Popen(
        pinned("1", [sys.executable, "-c", UPSTREAM, str(up_port)], args.pin)
    )
    gateway_cmd = [
        sys.executable, "-m", "thor_gateway", "--bind", f"127.0.0.1:{gw_port}",
        "--proxy", f"/=http://127.0.0.1:{up_port}",
    ]  # fmt: skip
    gateway = subprocess.Popen(
        pinned("0", gateway_cmd, args.pin), cwd=HERE.parents[1], stderr=subprocess.DEVNULL
    )
    try:
        wait_for(up_port)
        wait_for(gw_port)
        print(f"{args.connections} connections, {args.seconds:g} s per run, pinned: {args.pin}")
        for size, window in ((64, 64), (65536, 4)):
            run_load(up_port, args.connections, size, window, 1.0)  # warm-up
            direct = run_load(up_port, args.connections, size, window, args.seconds)
            run_load(gw_port, args.connections, size, window, 1.0)
            pid = serving_pid(gateway)
            cpu0 = cpu_seconds(pid)
            proxied = run_load(gw_port, args.connections, size, window, args.seconds)
            busy = (cpu_seconds(pid) - cpu0) / args.seconds
            print(
                f"{size:>6} B  direct {direct:10,.0f} msg/s   proxied {proxied:10,.0f} msg/s"
                f"   ratio {proxied / direct:.2f}   proxy CPU {busy:.0%}"
            )
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
