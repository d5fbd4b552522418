"""What the benchmark scripts share: a free loopback port, waiting for a listener, a server
started on CPU 0, a process's CPU time, and which WebSocket masking a Thor server runs
with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, timeout: float = 15.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; exit after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def on_cpu0(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``command`` started pinned to CPU 0 (``taskset``), from the repository's root, with
    ``env`` and its output discarded: the server under test, the load on the other core."""
    return subprocess.Popen(
        ["taskset", "-c", "0", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads; /proc/PID/stat fields 14
    and 15), 0.0 once it is gone or where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thor_server(name: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A server name without its ``-pure`` suffix, and its environment: ``thor-pure`` is
    ``thor`` with ``THOR_WS_PURE=1`` (the standard library's masking, not the C one)."""
    if name.endswith("-pure"):
        return name.removesuffix("-pure"), {**env, "THOR_WS_PURE": "1"}
    return name, env


def thor_masking(env: dict[str, str], python: str = sys.executable) -> str:
    """The masking Thor's WebSocket core picks in a process run by ``python`` with ``env``:
    ``websockets.speedups`` (the C accelerator) or ``stdlib``."""
    probe = "from thor.websocket.protocol import frames; print(frames.masking)"
    out = subprocess.run(
        [python, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()
