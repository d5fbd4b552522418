"""WebSocket server CPU per message, from the server's own CPU time: for a shared machine.

Usage::

    python benchmarks/ws_cpu.py [--servers thor,gateway,uvicorn,proxy] [--size 65536]
        [--messages 2000] [--connections 4] [--uvicorn-python PATH] [--callgrind]
    python benchmarks/ws_cpu.py --servers thor,thor-pure,gateway,gateway-pure,uvicorn --callgrind

Wall-clock messages per second swing by ±50 % when other processes share the cores; the CPU
time the server process spends per message does not (much). Each server runs alone; the
client here opens ``--connections`` connections and, on each, sends a masked binary message
of ``--size`` bytes and waits for the whole echo, ``--messages`` times in all, first a tenth
as a warm-up. The server's user + system CPU time (``/proc/PID/stat``) over the measured
part, divided by the messages, is the figure; so is its inverse, the messages per CPU-second
(what one core could serve). ``--callgrind`` runs each server under callgrind instead and
reports instructions per message (the difference between a run of ``--messages`` and one of
a fifth as many, so start-up cancels): slow, but deterministic.

- ``thor``: apps/ws_echo.py (thor.websocket, native). ``gateway``: thor-gateway hosting the
  ASGI echo of tests/websocket/asgi_echo.py. ``uvicorn``: uvicorn (its ``websockets``
  implementation) hosting the same app, run by ``--uvicorn-python`` (a venv with uvicorn and
  websockets; ``python -m venv /tmp/uv && /tmp/uv/bin/pip install uvicorn websockets``).
- ``proxy``: thor-gateway ``--proxy`` in front of ``thor``; the figure is the proxy's CPU
  alone (the relay's cost per message), to set against ``thor``'s (the echo's).
- ``thor-pure``, ``gateway-pure``: the same with ``THOR_WS_PURE=1``, the standard library's
  masking instead of the C accelerator (``thor[speedups]``). Each row says which masking the
  Thor server ran with (``websockets.speedups`` or ``stdlib``).

No permessage-deflate (the client does not offer it), no keepalive pings. Loopback only.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from support import cpu_seconds, free_port, thor_masking, thor_server, wait_for

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.websocket.asgi_echo:app"


def server_command(name: str, port: int, upstream: int, uvicorn_python: str) -> list[str]:
    python = sys.executable
    if name == "thor":
        return [python, "apps/ws_echo.py", "127.0.0.1", str(port), "0"]
    gateway = [python, "-m", "thor_gateway", "--port", str(port), "--log-level", "warning"]
    if name == "gateway":
        return [*gateway, APP, "--ws-ping-interval", "0", "--no-ws-per-message-deflate"]
    if name == "proxy":
        return [*gateway, "--proxy", f"/=http://127.0.0.1:{upstream}"]
    if name == "uvicorn":
        return [
            uvicorn_python,
            "-m",
            "uvicorn",
            APP,
            "--port",
            str(port),
            "--ws",
            "websockets",
            "--ws-ping-interval",
            "0",
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ]
    raise SystemExit(f"unknown server {name}")


def open_ws(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {head[:60]!r}")
    return sock


def masked_frame(size: int) -> bytes:
    """A binary frame as a client sends it (RFC 6455 §5.2): FIN, masked, the payload XORed."""
    key = os.urandom(4)
    payload = os.urandom(size)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    if size < 126:
        header = bytes([0x82, 0x80 | size])
    elif size < 0x10000:
        header = bytes([0x82, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x82, 0x80 | 127]) + size.to_bytes(8, "big")
    return header + key + masked


def exchange(socks: list[socket.socket], frame: bytes, echo_size: int, rounds: int) -> None:
    """``rounds`` times: each connection sends ``frame``, then each reads its whole echo."""
    buffer = bytearray(echo_size)
    view = memoryview(buffer)
    for _ in range(rounds):
        for sock in socks:
            sock.sendall(frame)
        for sock in socks:
            got = 0
            while got < echo_size:
                n = sock.recv_into(view[got:])
                if not n:
                    raise SystemExit("the server closed the connection")
                got += n


def run(name: str, args: argparse.Namespace, messages: int, callgrind: str | None) -> float:
    """Server CPU seconds (or, under callgrind, instructions) for ``messages`` echoes."""
    port = free_port()
    name, env = thor_server(name, {**os.environ, "PYTHONPATH": str(ROOT)})
    children = []
    upstream = 0
    if name == "proxy":
        upstream = free_port()
        children.append(
            subprocess.Popen(server_command("thor", upstream, 0, ""), cwd=ROOT, env=env)
        )
        wait_for(upstream)
    command = server_command(name, port, upstream, args.uvicorn_python)
    if callgrind:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}", *command]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    children.append(server)
    try:
        wait_for(port, 120 if callgrind else 15)
        socks = [open_ws(port) for _ in range(args.connections)]
        frame = masked_frame(args.size)
        echo_size = len(frame) - 4  # the server's frame is not masked: no key
        rounds = max(1, messages // args.connections)
        exchange(socks, frame, echo_size, max(1, rounds // 10))  # warm-up
        before = cpu_seconds(server.pid)
        exchange(socks, frame, echo_size, rounds)
        used = cpu_seconds(server.pid) - before
        for sock in socks:
            sock.close()
        return used / (rounds * len(socks))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            _, err = child.communicate(timeout=60)
            if callgrind and child is server:
                collected = [line for line in err.decode().splitlines() if "Collected" in line]
                if collected:
                    Path(callgrind + ".total").write_text(collected[-1].split()[-1])


def sent(args: argparse.Namespace, messages: int) -> int:
    """Messages a run of ``messages`` sends in all, its warm-up included (see run)."""
    rounds = max(1, messages // args.connections)
    return (rounds + max(1, rounds // 10)) * args.connections


def instructions(name: str, args: argparse.Namespace) -> float:
    """Instructions per message: a run of --messages minus one of a fifth as many."""
    runs = (args.messages // 5, args.messages)
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for messages in runs:
            out = str(Path(tmp) / f"{name}.{messages}")
            run(name, args, messages, out)
            counts.append(int(Path(out + ".total").read_text()))
    return (counts[1] - counts[0]) / (sent(args, runs[1]) - sent(args, runs[0]))


def masking_of(name: str) -> str:
    """Which masking the server unmasks with: Thor's pick in the server's environment."""
    base, env = thor_server(name, {**os.environ, "PYTHONPATH": str(ROOT)})
    if base == "uvicorn":
        return "websockets' own"
    if base == "proxy":
        return "none (a byte pump)"
    return thor_masking(env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="thor,gateway,uvicorn,proxy")
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="runs per server; the best")
    parser.add_argument("--uvicorn-python", default=shutil.which("python3") or sys.executable)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    servers = args.servers.split(",")
    results: dict[str, float] = {}
    unit = "instructions/msg" if args.callgrind else "CPU us/msg"
    print(f"{'server':<13} {'size':>7} {unit:>18} {'msgs per CPU-s':>15}  masking")
    for name in servers:
        masking = masking_of(name)
        if args.callgrind:
            value = instructions(name, args)
            print(f"{name:<13} {args.size:>7} {value:>18.0f} {'':>15}  {masking}", flush=True)
        else:
            value = min(run(name, args, args.messages, None) for _ in range(args.rounds))
            rate = 1 / value if value else float("inf")
            line = f"{name:<13} {args.size:>7} {value * 1e6:>18.1f} {rate:>15.0f}  {masking}"
            print(line, flush=True)
        results[name] = value
    if "thor" in results:
        base = results["thor"]
        for name, value in results.items():
            if name != "thor" and value:
                # For uvicorn: Thor's messages per CPU-second over uvicorn's. For the proxy:
                # the relay's cost per message as a share of the echo server's.
                print(f"{name} cost / thor cost: {value / base:.2f}")


if __name__ == "__main__":
    main()
