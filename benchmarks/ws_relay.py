"""WebSocket messages per second through ``thor-gateway --proxy``, against a direct connection.

Usage::

    python benchmarks/ws_relay.py [--seconds 5] [--connections 64] [--sizes 64,65536]
        [--layouts split,shared] [--no-pin]

Issue 12's target: the proxy relays WebSocket traffic at >= 0.8x the messages per second of
a direct connection.  For each size, two runs one after the other with the same client and
the same upstream, the native Thor echo server (``apps/ws_echo.py``, no keepalive pings):

- ``direct``: the client connects to the echo server;
- ``proxied``: the client connects to ``thor-gateway --proxy /=UPSTREAM`` (one worker), which
  relays the handshake and then the bytes (``thor_gateway/proxy/tunnel.py``).

The client (this process, plain ``selectors``) opens ``--connections`` WebSocket connections
and on each keeps a window of masked binary frames in flight, counting the echoes that come
back: 64 in flight per connection at 64 B, 4 at 64 KiB.  Each run reports messages per
second and every process's CPU time per message (user + system, ``/proc/PID/stat``): the
echo server's, the gateway's (the relay's own cost) and the client's.  CPU per message holds
steady on a shared machine where messages per second do not; and on two cores the relay
competes for CPU with the echo server or the load generator, so the ratio of the wall-clock
rates depends on where it runs.  ``echo / relay`` is the share of a direct connection's rate a
proxy on a core of its own would keep (1.0 and above: the relay is not the bottleneck).

Pinning (``taskset``; two cores): the echo server always has CPU 0 and the client CPU 1, in
both runs.  The gateway goes with the client (``split``, the fair layout: the echo server's
core is the same in both runs, and the client costs a fraction of the echo per message) or
with the echo server (``shared``, the worst case: the relay takes CPU from the server it
fronts).  Linux only; loopback only.
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

ROOT = Path(__file__).resolve().parents[1]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
KEY = base64.b64encode(os.urandom(16))
WINDOWS = {64: 64, 65536: 4}  # frames in flight per connection, by size


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
    if base64.b64encode(hashlib.sha1(KEY + GUID).digest()) not in head:
        raise SystemExit("wrong Sec-WebSocket-Accept")
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise SystemExit("bytes after the 101")
    sock.setblocking(False)
    return sock


class Load:
    """``connections`` connections, each keeping ``window`` frames of ``size`` in flight."""

    def __init__(self, port: int, connections: int, size: int) -> None:
        window = WINDOWS.get(size, 4)
        self.window = window
        self.batch = frame(size) * window
        self.echo = (len(self.batch) // window - 4) * window  # the echoes carry no mask key
        self.sel = selectors.DefaultSelector()
        self.waiting: dict[socket.socket, int] = {}
        for _ in range(connections):
            sock = handshake(port)
            sock.sendall(self.batch)
            self.waiting[sock] = self.echo
            self.sel.register(sock, selectors.EVENT_READ)

    def run(self, seconds: float) -> int:
        """Messages echoed in ``seconds``."""
        done = 0
        waiting, window, batch, echo = self.waiting, self.window, self.batch, self.echo
        into = memoryview(bytearray(1 << 20))  # recv(n) would allocate n bytes a call
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for key, _ in self.sel.select(1.0):
                sock = key.fileobj
                got = sock.recv_into(into)  # type: ignore[union-attr]
                if not got:
                    raise SystemExit("a connection closed during the run")
                left = waiting[sock] - got  # type: ignore[index]
                if left <= 0:  # a whole window came back: send the next
                    done += window
                    left += echo
                    sock.sendall(batch)  # type: ignore[union-attr]
                waiting[sock] = left  # type: ignore[index]
        return done

    def close(self) -> None:
        for sock in self.waiting:
            self.sel.unregister(sock)
            sock.close()


def system_seconds(pid: int) -> float:
    """System CPU time of process ``pid`` (/proc/PID/stat field 15): the kernel's part."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def measure(port: int, pids: dict[str, int], size: int, args: argparse.Namespace) -> list[float]:
    """[messages per second, then CPU microseconds per message of each of ``pids``, client,
    then the share of the last of ``pids`` (the gateway) that was system time]."""
    load = Load(port, args.connections, size)
    try:
        load.run(1.0)  # warm-up
        gateway = list(pids.values())[-1]
        before = [cpu_seconds(pid) for pid in pids.values()] + [own_cpu()]
        system = system_seconds(gateway)
        started = time.monotonic()
        done = load.run(args.seconds)
        elapsed = time.monotonic() - started
        after = [cpu_seconds(pid) for pid in pids.values()] + [own_cpu()]
        system = system_seconds(gateway) - system
    finally:
        load.close()
    per_message = [(b - a) * 1e6 / done for a, b in zip(before, after, strict=True)]
    relay = after[-2] - before[-2]
    return [done / elapsed, *per_message, system / relay if relay else 0.0]


def serving_pid(gateway: subprocess.Popen[bytes]) -> int:
    """The process that serves: the gateway's worker when it forked one, else itself."""
    children = Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children")
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        pids = children.read_text().split() if children.exists() else []
        if pids:
            return int(pids[0])
        time.sleep(0.05)
    return gateway.pid


def pinned(cpu: int, cmd: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if pin else cmd


def layout(name: str, args: argparse.Namespace) -> None:
    gateway_cpu = 1 if name == "split" else 0
    up_port, gw_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    echo_cmd = [sys.executable, "apps/ws_echo.py", "127.0.0.1", str(up_port), "0"]
    gateway_cmd = [
        sys.executable, "-m", "thor_gateway", "--bind", f"127.0.0.1:{gw_port}",
        "--log-level", "warning", "--proxy", f"/=http://127.0.0.1:{up_port}",
    ]  # fmt: skip
    upstream = subprocess.Popen(pinned(0, echo_cmd, args.pin), cwd=ROOT, env=env)
    gateway = subprocess.Popen(pinned(gateway_cpu, gateway_cmd, args.pin), cwd=ROOT, env=env)
    try:
        wait_for(up_port)
        wait_for(gw_port)
        pids = {"echo": upstream.pid, "gateway": serving_pid(gateway)}
        where = f"echo server CPU 0, client CPU 1, gateway CPU {gateway_cpu}"
        print(f"\n{name}: {where if args.pin else 'not pinned'}; load {load_average()}")
        print(
            f"{'size':>6} {'route':<8} {'msg/s':>9} {'ratio':>6}   CPU us/msg:"
            f" {'echo':>6} {'relay':>6} {'client':>6}   echo/relay  relay in kernel"
        )
        for size in args.sizes:
            direct = measure(up_port, pids, size, args)
            proxied = measure(gw_port, pids, size, args)
            for route, row in (("direct", direct), ("proxied", proxied)):
                ratio = f"{row[0] / direct[0]:6.2f}" if route == "proxied" else " " * 6
                relay = f"{row[2]:6.1f}" if route == "proxied" else " " * 6
                tail = ""
                if route == "proxied" and row[2]:
                    tail = f"{row[1] / row[2]:10.2f}  {row[4]:14.0%}"
                print(
                    f"{size:>6} {route:<8} {row[0]:>9,.0f} {ratio}   {'':>11}"
                    f" {row[1]:6.1f} {relay} {row[3]:6.1f}   {tail}",
                    flush=True,
                )
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--sizes", default="64,65536", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--layouts", default="split,shared")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {1})  # the load generator
    print(f"{args.connections} connections, {args.seconds:g} s per run")
    for name in args.layouts.split(","):
        layout(name, args)


if __name__ == "__main__":
    main()
