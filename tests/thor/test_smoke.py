"""A TCP echo round trip through the loop, end to end."""

from __future__ import annotations

import thor
from thor.loop import Loop
from thor.testing import run_for


def test_echo_round_trip(loop: Loop) -> None:
    server = thor.TcpServer("127.0.0.1", 0, loop=loop)

    def on_connect(conn: thor.TcpConnection) -> None:
        conn.on("data", conn.write)
        conn.on("close", conn.close)

    server.on("connect", on_connect)
    received: list[bytes] = []
    client_conns: list[thor.TcpConnection] = []

    def on_client(conn: thor.TcpConnection) -> None:
        client_conns.append(conn)

        def on_data(data: bytes) -> None:
            received.append(data)
            if b"".join(received) == b"hello":
                conn.close()
                loop.stop()

        conn.on("data", on_data)
        conn.write(b"hello")

    client = thor.TcpClient(loop)
    client.on("connect", on_client)
    client.connect("127.0.0.1", server.port, connect_timeout=2)
    try:
        run_for(loop, 5)
    finally:
        for conn in [*server.active_connections, *client_conns]:
            conn.abort()  # the client's is still lingering after its close()
        server.shutdown()
    assert b"".join(received) == b"hello"
