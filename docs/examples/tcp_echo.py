"""A TCP echo server and a client that streams 8 MiB through it, honouring flow control."""

import thor
from thor.loop import make

loop = make()
server = thor.TcpServer("127.0.0.1", 0, loop=loop)
TOTAL = 8 * 1024 * 1024


def on_server_connect(conn: thor.TcpConnection) -> None:
    # Echo, and stop reading while the echo waits to be sent: a proxy's loop.
    conn.on("data", conn.write)
    conn.on("pause", conn.pause)  # write side full -> stop reading, and back
    conn.on("close", conn.close)  # the peer is done: flush, FIN, then close


def on_client_connect(conn: thor.TcpConnection) -> None:
    state = {"sent": 0, "received": 0, "paused": False, "pauses": 0}
    chunk = b"x" * 65536

    def pump() -> None:
        while not state["paused"] and state["sent"] < TOTAL:
            conn.write(chunk)
            state["sent"] += len(chunk)
        if state["sent"] >= TOTAL:
            conn.shutdown_write()  # half-close: no more to send, still reading

    def on_pause(paused: bool) -> None:
        state["paused"] = paused
        state["pauses"] += paused
        if not paused:
            pump()

    def on_data(data: bytes) -> None:
        state["received"] += len(data)

    def on_close() -> None:
        print(f"client: sent {state['sent']}, received {state['received']} bytes back")
        print(f"client: the writer was paused {'at least once' if state['pauses'] else 'never'}")
        conn.close()

    conn.on("pause", on_pause)
    conn.on("data", on_data)
    conn.on("close", on_close)
    conn.on("disconnect", loop.stop)
    print(f"client: connected to {conn.address[0]}")
    pump()


def on_connect_error(kind: str, errno: int, message: str) -> None:
    print(f"client: connect_error {kind} {errno} {message}")
    loop.stop()


server.on("connect", on_server_connect)
client = thor.TcpClient(loop)
client.on("connect", on_client_connect)
client.on("connect_error", on_connect_error)
client.connect("127.0.0.1", server.port, connect_timeout=2)
loop.schedule(10, loop.stop)  # a deadline, should anything go wrong
loop.run()

# Connecting to a port where nobody listens: connect_error, not an exception.
refused = thor.TcpClient(loop)
refused.on("connect_error", on_connect_error)
server.shutdown()
refused.connect("127.0.0.1", server.port, connect_timeout=2)
loop.run()
loop.close()
