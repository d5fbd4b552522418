"""Run thor-gateway in a subprocess and talk to it (gateway end-to-end tests)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Listening at (https?)://(\[[^\]]+\]|[^:\s]+):(\d+)")
METRICS = re.compile(r"Metrics at http://([^:\s]+):(\d+)/metrics")


class Gateway:
    """``python -m thor_gateway ARGS`` with its stderr collected line by line."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("THOR_")}
        full_env.pop("WEB_CONCURRENCY", None)
        full_env.pop("FORWARDED_ALLOW_IPS", None)
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "thor_gateway", *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
        )
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port = 0
        self.host = "127.0.0.1"
        self.metrics_port = 0

    def _read(self, stream: object, into: list[str]) -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            with self._lock:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        """The first stderr line matching ``pattern``; fails at the deadline or on exit."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the readers catch the last lines
                with self._lock:
                    for line in self.lines:
                        match = regex.search(line)
                        if match:
                            return match
                raise AssertionError(f"gateway exited ({self.proc.returncode}):\n{self.log}")
            time.sleep(0.02)
        raise AssertionError(f"no line matching {regex.pattern!r} in time:\n{self.log}")

    def count_lines(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._lock:
            return sum(1 for line in self.lines if regex.search(line))

    def wait_ready(self, timeout: float = 15.0) -> Gateway:
        match = self.wait_for_line(LISTENING, timeout)
        self.host = match[2].strip("[]")
        self.port = int(match[3])
        if any("--metrics-bind" in a for a in self.args):
            metrics = self.wait_for_line(METRICS, timeout)
            self.metrics_port = int(metrics[2])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for --check-config, --version, errors)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("THOR_")}
    full_env.pop("WEB_CONCURRENCY", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "thor_gateway", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def raw_exchange(
    port: int, data: bytes, *, timeout: float = 5.0, half_close: bool = False
) -> bytes:
    """Send ``data``, read until the server closes (or the deadline); return what came."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def statuses(response: bytes) -> list[int]:
    """The status codes of the responses in ``response``, in order (Content-Length framed)."""
    codes = []
    rest = response
    while rest.startswith(b"HTTP/1."):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        codes.append(int(head[9:12]))
        if not sep:
            break
        length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
        if int(head[9:12]) >= 200 and length:
            rest = rest[int(length[1]) :]
    return codes


def poll(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class Load:
    """A bounded load: ``threads`` clients doing keep-alive GETs until stopped or ``seconds``.

    Failures are requests that were sent and got no complete, correct answer.  One case
    is retried instead, as HTTP clients do (RFC 9112 §9.3.1): a request on a *reused*
    keep-alive connection that the server closed as idle before reading it (no response
    byte came back); the retry goes on a new connection.  ``refused`` counts new
    connections refused, which is right only after the server was told to stop, and
    so are new connections opened after :meth:`server_told_to_stop` that are reset
    before any answer: the kernel can complete a handshake on the shared listening
    socket between the last worker's final ``accept`` and its ``close`` (a window no
    server can close), and such a client never had its request read.
    """

    def __init__(self, port: int, path: str, *, threads: int = 8, seconds: float = 10.0) -> None:
        self.port = port
        self.path = path
        self.deadline = time.monotonic() + seconds
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.closed_by_server = 0
        self.retried = 0
        self.refused = 0
        self.failures: list[str] = []
        self.stop_sent_at: float | None = None
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)

    def server_told_to_stop(self) -> None:
        """Call just before signalling the server to stop (see the class docstring)."""
        self.stop_sent_at = time.monotonic()

    def wait_ok(self, count: int, timeout: float = 10.0) -> None:
        poll(lambda: self.ok >= count, timeout, f"{count} answered requests")

    def _count(self, name: str, detail: str = "") -> None:
        with self.lock:
            if name == "failure":
                self.failures.append(detail)
            else:
                setattr(self, name, getattr(self, name) + 1)

    def _run(self) -> None:
        import http.client

        conn: http.client.HTTPConnection | None = None
        reused = False
        connected_at = 0.0
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                connected_at = time.monotonic()  # taken before: the handshake starts after it
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    self._count("refused")
                    conn = None
                    time.sleep(0.05)
                    continue
                reused = False
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = None
                if reused:
                    self._count("retried")
                elif self.stop_sent_at is not None and connected_at >= self.stop_sent_at:
                    self._count("refused")
                else:
                    self._count("failure", f"{type(e).__name__}: {e}")
                continue
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                conn = None
                self._count("failure", f"{type(error).__name__}: {error}")
                continue
            if response.status != 200 or not body:
                self._count("failure", f"status {response.status} {body[:80]!r}")
            else:
                self._count("ok")
            reused = True
            if response.getheader("Connection", "").lower() == "close":
                self._count("closed_by_server")
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
