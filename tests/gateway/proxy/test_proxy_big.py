"""1 GiB up and 1 GiB down through a proxy process whose peak memory is measured."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.gateway.proxy_support import read_head

GIB = 1 << 30
BLOCK = b"\x5a" * (1 << 20)
CHILD = Path(__file__).parent.parent / "proxy_child.py"


def serve_bulk(listener: socket.socket, received: list[int]) -> None:
    """An upstream that answers GET with 1 GiB and counts the body of a PUT."""
    listener.settimeout(20)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(20)
        buffered = b""
        for _ in range(2):  # two requests on one kept-alive connection
            head = buffered
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                assert chunk, "proxy closed the upstream connection"
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            if head.startswith(b"GET"):
                buffered = rest
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % GIB)
                for _ in range(GIB // len(BLOCK)):
                    conn.sendall(BLOCK)
            else:
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                got = len(rest)
                while got < length:
                    chunk = conn.recv(1 << 20)
                    assert chunk, "proxy closed the upstream connection mid-body"
                    got += len(chunk)
                received.append(got)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                buffered = b""


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_one_gib_each_way_in_bounded_memory() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received: list[int] = []
    upstream = threading.Thread(target=serve_bulk, args=(listener, received), daemon=True)
    upstream.start()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), f"http://127.0.0.1:{listener.getsockname()[1]}"],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            # download
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            head = read_head(sock, timeout=20)
            header, _, body = head.partition(b"\r\n\r\n")
            assert header.startswith(b"HTTP/1.1 200 OK")
            assert b"Content-Length: %d" % GIB in header
            got = len(body)
            while got < GIB:
                chunk = sock.recv(1 << 20)
                assert chunk, f"connection closed after {got} bytes"
                got += len(chunk)
            assert got == GIB
            # upload
            sock.sendall(b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GIB)
            for _ in range(GIB // len(BLOCK)):
                sock.sendall(BLOCK)
            answer = read_head(sock, timeout=20)
            assert answer.startswith(b"HTTP/1.1 200 OK")
        elapsed = time.monotonic() - started
        assert received == [GIB]
        peak = peak_rss_kib(child.pid)
        print(f"2 GiB through the proxy in {elapsed:.1f}s; proxy peak RSS {peak / 1024:.1f} MiB")
        assert peak < 80 * 1024, f"proxy peak RSS {peak} KiB"
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()  # type: ignore[union-attr]
        upstream.join(10)
        listener.close()
