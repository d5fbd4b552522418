"""TCP echo: Thor's TcpServer against an asyncio.Protocol server, same client.

Usage::

    python benchmarks/tcp_echo.py [--connections 50] [--seconds 3] [--sizes 64,4096,65536]
    python benchmarks/tcp_echo.py --profile thor      # cProfile of Thor's server side

Each server runs in its own process (pinned to CPU 0 with ``taskset`` when it
exists); the client is a separate process (pinned to CPU 1) that opens
``--connections`` non-blocking connections and keeps one message in flight on
each: send ``size`` bytes, wait for all of them to come back, repeat.  It
counts round trips for ``--seconds`` per message size and reports msgs/s for
each server and the ratio Thor / asyncio.  Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import select
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))

from support import cpu_seconds  # noqa: E402 (benchmarks/ is the script's folder)

# ---------------------------------------------------------------- servers


def serve_thor(profile: str | None) -> None:
    import thor
    from thor.loop import Loop

    loop = Loop()
    server = thor.TcpServer("127.0.0.1", 0, loop=loop)

    def on_connect(conn: thor.TcpConnection) -> None:
        conn.on("data", conn.write)
        conn.on("close", conn.close)

    server.on("connect", on_connect)
    announce_and_run(server.port, loop.run, lambda: loop.run_in_loop(loop.stop), profile)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def serve_asyncio(profile: str | None) -> None:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(EchoProtocol, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    announce_and_run(port, loop.run_forever, lambda: loop.call_soon_threadsafe(loop.stop), profile)


def announce_and_run(
    port: int, run: Callable[[], object], stop: Callable[[], object], profile: str | None
) -> None:
    """Print the port, run until stdin closes (the parent's signal to stop).

    ``stop`` must be safe to call from another thread.  With ``profile``, the
    server runs under cProfile and prints its top functions to stderr.
    """

    def wait_for_parent() -> None:
        sys.stdin.read()
        if profile is None:
            os._exit(0)
        stop()

    threading.Thread(target=wait_for_parent, daemon=True).start()
    print(port, flush=True)
    if profile is None:
        run()
        return
    profiler = cProfile.Profile()
    profiler.runcall(run)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)


# ----------------------------------------------------------------- client


def client(port: int, connections: int, size: int, seconds: float, max_trips: int = 0) -> int:
    """Round trips completed in ``seconds`` over ``connections`` connections.

    With ``max_trips``, stop after that many instead (``seconds`` is then
    only a safety deadline).  Kept lean (one recv and one send per event)
    so that the server, not the client, is what the figures measure as far
    as possible.
    """
    message = b"x" * size
    selector = selectors.DefaultSelector()
    remaining: dict[int, int] = {}
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
        selector.register(sock, selectors.EVENT_READ)
    trips = 0
    for sock in socks:
        send_all(sock, message)
        remaining[sock.fileno()] = size
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and not (max_trips and trips >= max_trips):
        for key, _ in selector.select(1.0):
            sock = key.fileobj  # type: ignore[assignment]
            try:
                left = remaining[key.fd] - len(sock.recv(262144))
            except BlockingIOError:
                continue
            if left:
                remaining[key.fd] = left
                continue
            trips += 1
            remaining[key.fd] = size
            send_all(sock, message)
    for sock in socks:
        sock.close()
    selector.close()
    return trips


def send_all(sock: socket.socket, message: bytes) -> None:
    sent = sock.send(message)
    while sent < len(message):  # rare: only large messages, only when the buffer is full
        select.select([], [sock], [], 1.0)
        try:
            sent += sock.send(message[sent:])
        except BlockingIOError:
            pass


# ------------------------------------------------------------------ driver


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu)]
    return []


def measure(kind: str, args: argparse.Namespace) -> dict[int, tuple[float, float]]:
    """{size: (round trips per second, server CPU microseconds per round trip)}."""
    server = subprocess.Popen(
        [*pinned(0), sys.executable, str(HERE), "--serve", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(server.stdout.readline())
    results: dict[int, tuple[float, float]] = {}
    try:
        for size in args.sizes:
            cpu_before = cpu_seconds(server.pid)
            out = subprocess.run(
                [
                    *pinned(1),
                    sys.executable,
                    str(HERE),
                    "--client",
                    str(port),
                    "--connections",
                    str(args.connections),
                    "--seconds",
                    str(args.seconds),
                    "--sizes",
                    str(size),
                ],
                capture_output=True,
                text=True,
                timeout=args.seconds * 10 + 30,
                check=True,
            )
            trips = int(out.stdout)
            cpu = cpu_seconds(server.pid) - cpu_before
            results[size] = (trips / args.seconds, cpu / max(trips, 1) * 1e6)
    finally:
        server.stdin.close()
        server.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64, 4096, 65536]
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", choices=["thor", "asyncio"])
    parser.add_argument("--client", type=int, metavar="PORT")
    parser.add_argument("--profile", choices=["thor", "asyncio"])
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the servers' instructions per round trip under valgrind (load-independent)",
    )
    args = parser.parse_args()
    if args.serve:
        (serve_thor if args.serve == "thor" else serve_asyncio)(None)
        return
    if args.client:
        print(client(args.client, args.connections, args.sizes[0], args.seconds))
        return
    if args.profile:
        profile_server(args)
        return
    if args.instructions:
        count_instructions(args)
        return
    print(
        f"{args.connections} connections, {args.seconds}s per size, {args.repeat} rounds "
        f"(best of each), pinned: {bool(pinned(1))}"
    )
    best: dict[str, dict[int, tuple[float, float]]] = {"thor": {}, "asyncio": {}}
    for _ in range(args.repeat):  # alternate, so that load from elsewhere hits both
        for kind in ("thor", "asyncio"):
            for size, (rate, cpu) in measure(kind, args).items():
                old_rate, old_cpu = best[kind].get(size, (0.0, float("inf")))
                best[kind][size] = (max(rate, old_rate), min(cpu, old_cpu))
    print(
        f"{'size':>6} {'thor msg/s':>11} {'asyncio msg/s':>14} {'ratio':>6}   "
        f"{'thor us/msg':>11} {'asyncio us/msg':>14} {'ratio':>6}  (server CPU)"
    )
    for size in args.sizes:
        (t_rate, t_cpu), (a_rate, a_cpu) = best["thor"][size], best["asyncio"][size]
        print(
            f"{size:>6} {t_rate:>11.0f} {a_rate:>14.0f} {t_rate / a_rate:>5.2f}x   "
            f"{t_cpu:>11.1f} {a_cpu:>14.1f} {a_cpu / t_cpu:>5.2f}x"
        )
    print("ratio = Thor / asyncio: msgs/s, and asyncio CPU / Thor CPU (above 1 = Thor better)")


def profile_server(args: argparse.Namespace) -> None:
    """Run one server under cProfile in this process's child, drive it, print the profile."""
    server = subprocess.Popen(
        [*pinned(0), sys.executable, "-c", _PROFILE_SNIPPET.format(kind=args.profile)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parents[1],
    )
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(server.stdout.readline())
    for size in args.sizes:
        trips = client(port, args.connections, size, args.seconds)
        print(f"size {size}: {trips / args.seconds:.0f} msg/s (under the profiler)")
    server.stdin.close()
    server.wait(30)


def instructions(kind: str, size: int, trips: int, connections: int) -> int:
    """Instructions the server executed: start-up, ``trips`` round trips, shutdown."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        server = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(HERE),
                "--serve",
                kind,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdin is not None
        port = int(server.stdout.readline())
        done = client(port, connections, size, 600.0, max_trips=trips)
        assert done >= trips
        server.stdin.close()
        server.wait(120)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no callgrind summary")


def count_instructions(args: argparse.Namespace) -> None:
    """Instructions per round trip: the difference between a short and a long run."""
    short, long = 200, 2200
    print(f"{'size':>6} {'thor instr/msg':>15} {'asyncio instr/msg':>18} {'asyncio/thor':>13}")
    for size in args.sizes:
        per_msg = {}
        for kind in ("thor", "asyncio"):
            few = instructions(kind, size, short, args.connections)
            many = instructions(kind, size, long, args.connections)
            per_msg[kind] = (many - few) / (long - short)
        ratio = per_msg["asyncio"] / per_msg["thor"]
        print(f"{size:>6} {per_msg['thor']:>15.0f} {per_msg['asyncio']:>18.0f} {ratio:>12.2f}x")


_PROFILE_SNIPPET = (
    "import sys; sys.path.insert(0, 'benchmarks'); import tcp_echo; "
    "tcp_echo.serve_{kind}('profile')"
)


if __name__ == "__main__":
    main()
