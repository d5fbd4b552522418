"""Memory per idle keep-alive connection: N clients each make one request, then stay idle.

    python benchmarks/reliability/idle_connections.py [--conns 10000] [--route wsgi]
                                                     [--hold 5] [--server thor]

Starts ``thor-gateway`` from this tree (one worker, ``--keep-alive 600`` so the idle
connections are held, not timed out) with the WSGI, ASGI and proxy routes, opens
``--conns`` connections, sends one GET on each and reads its response (so each is a
kept-alive connection between requests, the state that lasts), waits ``--hold`` seconds,
and prints the gateway's resident memory before and after and the difference per
connection. Raises the soft descriptor limit (``ulimit -n``) for itself and the gateway.
Target: 4 KB per connection or less. ``--server`` measures a peer instead (``peers.py``, on
its route; its keep-alive timeout set to 600 s too, as uvicorn's default is 5 s), the RSS of
its process tree.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_under_test import raise_fd_limit, tree_rss_kib
from peers import SERVERS, check_installed, server


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
    parser.add_argument("--route", help="default: wsgi (a peer: its route)")
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--server", choices=SERVERS, default="thor")
    args = parser.parse_args()
    args.route = args.route or SERVERS[args.server][0]
    if args.route not in SERVERS[args.server]:
        parser.error(f"{args.server} has no route {args.route}")
    check_installed(args.server)
    limit = raise_fd_limit(args.conns + 512)
    if limit < args.conns + 64:
        raise SystemExit(f"the descriptor limit is {limit}: too low for {args.conns} connections")
    request = f"GET /{args.route}/ HTTP/1.1\r\nHost: idle\r\n\r\n".encode()
    socks: list[socket.socket] = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        server(args.server, Path(workdir), keep_alive=600, backlog=4096) as gw,
    ):
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(request)  # one request first: every lazy import and cache is warm
        read_response(sock)
        socks.append(sock)
        time.sleep(1)
        before = tree_rss_kib(gw.proc.pid)
        start = time.monotonic()
        try:
            for _ in range(args.conns - 1):
                sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
                sock.sendall(request)
                try:
                    read_response(sock)
                except TimeoutError:
                    # A server that caps its connections (waitress: connection_limit,
                    # 100 by default) leaves the next one unanswered: say so, not crash.
                    sock.close()
                    raise SystemExit(
                        f"{args.server}: connection {len(socks) + 1} got no answer in 10 s "
                        f"with {len(socks)} idle keep-alive connections open"
                    ) from None
                socks.append(sock)
            opened = time.monotonic() - start
            time.sleep(args.hold)
            after = tree_rss_kib(gw.proc.pid)
            alive = sum(1 for s in socks if _open(s))
        finally:
            for sock in socks:
                sock.close()
    per_conn = (after - before) / max(1, len(socks) - 1)
    print(
        f"{args.server}: {len(socks)} idle keep-alive connections on /{args.route} (opened in "
        f"{opened:.1f} s, {alive} still open after {args.hold:g} s; ulimit -n {limit}): RSS "
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
