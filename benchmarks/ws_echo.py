"""WebSocket echo round trips: Thor (native and thor-gateway ASGI) against uvicorn and hypercorn.

Usage (the other servers and the client come from a throwaway venv)::

    python -m venv /tmp/wsbench && /tmp/wsbench/bin/pip install picows uvicorn websockets \\
        hypercorn wsproto
    /tmp/wsbench/bin/python benchmarks/ws_echo.py [--connections 64] [--seconds 5] \\
        [--sizes 64,65536] [--servers thor,gateway,uvicorn,hypercorn]

Each server runs alone, pinned to CPU 0 (``taskset``), serving the same ASGI echo app
(``tests/websocket/asgi_echo.py``; Thor native serves ``apps/ws_echo.py``), without
permessage-deflate and without keepalive pings. The client, pinned to CPU 1, is ``picows``
(compiled, so the client is not the bottleneck): ``--connections`` connections, each with one
binary message in flight (send, wait for the echo, repeat), for ``--seconds`` per size. It
prints messages per second per server and size, the client's CPU share, and the ratios to
Thor native. Loopback only.

Thor masks with websockets' C ``speedups`` when the venv has websockets (``thor[speedups]``),
else with the standard library's code; ``thor-pure`` and ``gateway-pure`` force the latter
(``THOR_WS_PURE=1``). Each Thor row says which masking its server ran with.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support import thor_masking, thor_server

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.websocket.asgi_echo:app"


def server_command(name: str, port: int) -> list[str]:
    python = sys.executable
    if name == "thor":
        return [python, "apps/ws_echo.py", "127.0.0.1", str(port), "0"]
    if name == "gateway":
        return [
            python,
            "-m",
            "thor_gateway",
            APP,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws-ping-interval",
            "0",
            "--no-ws-per-message-deflate",
        ]
    if name in ("uvicorn", "uvicorn-sansio"):
        ws = "websockets" if name == "uvicorn" else "websockets-sansio"
        return [
            python,
            "-m",
            "uvicorn",
            APP,
            "--port",
            str(port),
            "--ws",
            ws,
            "--ws-ping-interval",
            "0",
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ]
    if name == "hypercorn":
        return [python, "-m", "hypercorn", APP, "-b", f"127.0.0.1:{port}", "-w", "1"]
    raise SystemExit(f"unknown server {name}")


def pinned(command: list[str], cpu: int) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *command] if taskset else command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if child.poll() is not None:
                raise SystemExit(f"server exited with {child.returncode}") from None
            time.sleep(0.05)
    raise SystemExit("server did not start")


# ------------------------------------------------------------------------- the client


async def client_run(port: int, size: int, connections: int, seconds: float) -> int:
    """Round trips in ``seconds`` over ``connections`` picows connections."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    payload = os.urandom(size)
    count = [0]
    stop_at = [0.0]

    class Echo(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.transport: Any = None
            self.got = 0

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.CLOSE:
                return
            self.got += len(frame.get_payload_as_memoryview())
            if frame.fin and self.got >= size:
                self.got = 0
                count[0] += 1
                if time.monotonic() < stop_at[0]:
                    transport.send(WSMsgType.BINARY, payload)

    url = f"ws://127.0.0.1:{port}/echo"
    pairs = [await ws_connect(Echo, url) for _ in range(connections)]
    # Warm-up, then the measured run.
    stop_at[0] = time.monotonic() + 0.5
    for _, listener in pairs:
        listener.transport.send(WSMsgType.BINARY, payload)
    await asyncio.sleep(0.7)
    count[0] = 0
    start = time.monotonic()
    stop_at[0] = start + seconds
    for _, listener in pairs:
        listener.transport.send(WSMsgType.BINARY, payload)
    await asyncio.sleep(seconds)
    done = count[0]
    for transport, _ in pairs:
        transport.send_close()
        transport.disconnect()
    return done


def client_main(port: int, size: int, connections: int, seconds: float) -> None:
    before = os.times()
    done = asyncio.run(client_run(port, size, connections, seconds))
    after = os.times()
    cpu = (after.user - before.user + after.system - before.system) / (seconds + 0.7)
    print(f"{done / seconds:.0f} {cpu:.2f}")


def measure(name: str, size: int, args: argparse.Namespace) -> tuple[float, float]:
    port = free_port()
    name, env = thor_server(name, {**os.environ, "PYTHONPATH": str(ROOT)})
    server = subprocess.Popen(
        pinned(server_command(name, port), 0), cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        wait_listening(port, server)
        command = [sys.executable, __file__, "--client", str(port), str(size)]
        command += ["--connections", str(args.connections), "--seconds", str(args.seconds)]
        out = subprocess.run(
            pinned(command, 1), capture_output=True, text=True, timeout=120, check=True
        )
        rate, cpu = out.stdout.split()
        return float(rate), float(cpu)
    finally:
        server.terminate()
        server.wait(10)


def masking_of(name: str) -> str:
    """Which masking the server unmasks with: Thor's pick in the server's environment."""
    base, env = thor_server(name, {**os.environ, "PYTHONPATH": str(ROOT)})
    if base in ("thor", "gateway"):
        return thor_masking(env)
    return "its own"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", default="64,65536")
    parser.add_argument("--servers", default="thor,gateway,uvicorn,hypercorn")
    parser.add_argument("--client", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client[0], args.client[1], args.connections, args.seconds)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    servers = args.servers.split(",")
    results: dict[tuple[str, int], float] = {}
    masking = {name: masking_of(name) for name in servers}
    print(f"{'server':<13} {'size':>7} {'msgs/s':>10} {'client CPU':>10}  masking")
    for size in sizes:
        for name in servers:
            rate, cpu = measure(name, size, args)
            results[name, size] = rate
            line = f"{name:<13} {size:>7} {rate:>10.0f} {cpu:>10.2f}  {masking[name]}"
            print(line, flush=True)
    base = servers[0]
    for size in sizes:
        ratios = ", ".join(
            f"{base}/{name} {results[base, size] / results[name, size]:.2f}"
            for name in servers[1:]
            if results[name, size]
        )
        print(f"size {size}: {ratios}")


if __name__ == "__main__":
    main()
