"""The switch-point example of docs/http.md: ``python docs/examples/http_switch.py [PORT]``.

A WebSocket handshake (RFC 6455 §4.2.2) answered with 101, after which the handler speaks
frames on the raw connection: this toy echoes short unfragmented text frames.
"""

import base64
import hashlib
import sys

import thor
from thor.http import get_header

server = thor.HttpServer("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def echo_frames(conn, data):
    # Toy framing: one masked client text frame with a payload under 126 bytes per read.
    length, mask = data[1] & 0x7F, data[2:6]
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[6 : 6 + length]))
    conn.write(bytes([0x81, length]) + payload)  # server frames are not masked (§5.1)


@thor.on(server)
def exchange(ex):
    @thor.on(ex)
    def request_start(method, uri, headers):
        key = get_header(headers, b"sec-websocket-key")
        upgrade = [v.lower() for v in get_header(headers, b"upgrade")]
        if not key or b"websocket" not in upgrade:
            return  # not a WebSocket handshake: served as plain HTTP (RFC 9110 §7.8)
        accept = base64.b64encode(hashlib.sha1(key[0] + GUID).digest())
        ex.response_start(
            101,
            "Switching Protocols",
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                (b"Sec-WebSocket-Accept", accept),
            ],
        )
        switched = ex.take_over()  # the raw connection, and what came after the request
        conn = switched.tcp_conn
        conn.on("data", lambda data: echo_frames(conn, data))
        conn.on("close", conn.close)
        if switched.leftover:
            echo_frames(conn, switched.leftover)

    @thor.on(ex)
    def request_done(trailers):
        ex.response_start(200, "OK", [("Content-Type", "text/plain")])
        ex.response_body(b"Upgrade: websocket to get an echo\n")
        ex.response_done([])


print(f"serving on http://127.0.0.1:{server.port}/", flush=True)
thor.run()
