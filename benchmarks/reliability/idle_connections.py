"""Memory per idle keep-alive connection: N clients each make one request, then stay idle.

    python benchmarks/reliability/idle_connections.py [--conns 10000] [--route wsgi]
                                                     [--hold 5]

Starts ``thor-gateway`` from this tree (one worker, ``--keep-alive 600`` so the idle
connections are held, not timed out) with the WSGI, ASGI and proxy routes, opens
``--conns`` connections, sends one GET on each and reads its response (so each is a
kept-alive connection between requests, the state that lasts), waits ``--hold`` seconds,
and prints the gateway's resident memory before and after and the difference per
connection. Raises the soft descriptor limit (``ulimit -n``) for itself and the gateway.
Target: 4 KB per connection or less.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_under_test import ROUTES, gateway, raise_fd_limit, rss_kib


def read_response(sock: socket.socket) -> None:
    """Read one small response (head and a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--route", choices=ROUTES, default="wsgi")
    parser.add_argument("--hold", type=float, default=5.0)
    args = parser.parse_args()
    limit = raise_fd_limit(args.conns + 512)
    if limit < args.conns + 64:
        raise SystemExit(f"the descriptor limit is {limit}: too low for {args.conns} connections")
    request = f"GET /{args.route}/ HTTP/1.1\r\nHost: idle\r\n\r\n".encode()
    socks: list[socket.socket] = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        gateway(Path(workdir), "keep_alive = 600\nbacklog = 4096") as gw,
    ):
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(request)  # one request first: every lazy import and cache is warm
        read_response(sock)
        socks.append(sock)
        time.sleep(1)
        before = rss_kib(gw.proc.pid)
        start = time.monotonic()
        try:
            for _ in range(args.conns - 1):
                sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
                sock.sendall(request)
                read_response(sock)
                socks.append(sock)
            opened = time.monotonic() - start
            time.sleep(args.hold)
            after = rss_kib(gw.proc.pid)
            alive = sum(1 for s in socks if _open(s))
        finally:
            for sock in socks:
                sock.close()
    per_conn = (after - before) / max(1, len(socks) - 1)
    print(
        f"{len(socks)} idle keep-alive connections on /{args.route} (opened in {opened:.1f} s, "
        f"{alive} still open after {args.hold:g} s; ulimit -n {limit}): gateway RSS "
        f"{before / 1024:.1f} MB before, {after / 1024:.1f} MB after, "
        f"{per_conn:.2f} KB per connection"
    )


def _open(sock: socket.socket) -> bool:
    """Whether the server still holds ``sock`` open (no EOF waiting on it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
