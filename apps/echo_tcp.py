"""A TCP echo server on the Thor loop: ``python apps/echo_tcp.py [HOST] [PORT]``."""

from __future__ import annotations

import sys

import thor


def main(host: str = "127.0.0.1", port: int = 8000) -> None:
    server = thor.TcpServer(host, port)

    @thor.on(server)
    def connect(conn: thor.TcpConnection) -> None:
        conn.on("data", conn.write)  # echo every byte back
        conn.on("close", conn.close)  # the peer is done: finish and close

    print(f"echoing on {server.host}:{server.port}", flush=True)
    thor.run()


if __name__ == "__main__":
    main(*sys.argv[1:2], *[int(p) for p in sys.argv[2:3]])
