"""thor.websocket's IO side over real sockets on 127.0.0.1: accept(), WebSocket, WebSocketClient.

Two shapes: a Thor server and a ``thor.WebSocketClient`` on one loop in this thread
(``run_for`` bounds each run), and a Thor server on a loop thread with a raw blocking socket
as the peer, for what a well-behaved client never sends.
"""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import thor
import thor.loop
import thor.websocket
from thor.http.server import HttpServer
from thor.testing import run_for
from thor.tls import client_context, server_context
from thor.websocket import WebSocket, WebSocketClient
from thor.websocket.protocol import HandshakeResponseError

from .helpers import client_frame

KEY = base64.b64encode(b"0123456789abcdef")
HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture
def loop() -> Iterator[thor.loop.Loop]:
    the_loop = thor.loop.make()
    yield the_loop
    the_loop.close()


def serve(loop: thor.loop.Loop, on_open: Callable[[WebSocket], None], **options: Any) -> HttpServer:
    """A server accepting every handshake (subprotocol "chat") and handing it to ``on_open``."""
    server = HttpServer("127.0.0.1", 0, loop)

    def exchange(ex: Any) -> None:
        websocket = thor.websocket.accept(ex, subprotocols=["chat"], **options)
        if websocket is not None:
            on_open(websocket)

    server.on("exchange", exchange)
    return server


def echo(websocket: WebSocket) -> None:
    websocket.on(
        "message",
        lambda data: websocket.send_text(data) if type(data) is str else websocket.send_bytes(data),
    )


def connect(
    loop: thor.loop.Loop, port: int, on_open: Callable[[WebSocket], None], **kw: Any
) -> list[Exception]:
    errors: list[Exception] = []
    client = WebSocketClient(loop)
    client.on("open", on_open)
    client.on("error", lambda err: (errors.append(err), loop.stop()))
    client.connect(f"ws://127.0.0.1:{port}/chat", **kw)
    return errors


def test_echo_text_and_bytes_then_a_clean_close(loop: thor.loop.Loop) -> None:
    seen: dict[str, Any] = {}

    def server_open(websocket: WebSocket) -> None:
        echo(websocket)
        websocket.on("close", lambda code, reason: seen.update(server=(code, reason)))

    server = serve(loop, server_open)
    got: list[str | bytes] = []
    big = bytes(range(256)) * 400  # 100 KiB: 64-bit length, compressed, several reads

    def client_open(websocket: WebSocket) -> None:
        seen["subprotocol"] = websocket.subprotocol
        seen["deflate"] = websocket.conn.deflate is not None

        def message(data: str | bytes) -> None:
            got.append(data)
            if len(got) == 2:
                websocket.close(1000, "done")

        websocket.on("message", message)
        websocket.on(
            "close", lambda code, reason: (seen.update(client=(code, reason)), loop.stop())
        )
        websocket.send_text("héllo")
        websocket.send_bytes(big)

    errors = connect(loop, server.port, client_open, subprotocols=["other", "chat"])
    run_for(loop, 5)
    assert not errors
    assert got == ["héllo", big]
    assert seen["subprotocol"] == "chat"
    assert seen["deflate"]
    assert seen["client"] == (1000, "")  # the server echoes the code (§5.5.1), no reason
    run_for_close(loop, lambda: "server" in seen)
    assert seen["server"] == (1000, "done")
    server.shutdown()


def run_for_close(loop: thor.loop.Loop, done: Callable[[], bool], seconds: float = 5) -> None:
    """Run the loop until ``done()`` (checked every 10 ms), at most ``seconds``."""

    def check() -> None:
        if done():
            loop.stop()
        else:
            loop.schedule(0.01, check)

    check()
    if not done():
        run_for(loop, seconds)


def test_a_refused_handshake_is_an_error_event(loop: thor.loop.Loop) -> None:
    server = HttpServer("127.0.0.1", 0, loop)
    server.on(
        "exchange",
        lambda ex: ex.once("request_done", lambda t: ex.respond(200, b"OK", [], b"plain")),
    )
    errors = connect(loop, server.port, lambda ws: None)
    run_for(loop, 5)
    assert len(errors) == 1
    assert isinstance(errors[0], HandshakeResponseError)
    assert "status 200" in str(errors[0])
    server.shutdown()


def test_a_bad_url_and_a_refused_connection_are_errors(loop: thor.loop.Loop) -> None:
    errors: list[Exception] = []
    client = WebSocketClient(loop, connect_timeout=2)
    client.on("error", errors.append)
    client.on("open", lambda ws: errors.append(AssertionError("opened")))
    client.connect("http://127.0.0.1/")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client.connect(f"ws://127.0.0.1:{port}/")
    run_for_close(loop, lambda: len(errors) == 2)
    assert [type(e).__name__ for e in errors] in (
        ["UrlError", "ConnectError"],
        ["ConnectError", "UrlError"],
    )


def test_wss_is_verified_and_works_with_a_trusted_ca(loop: thor.loop.Loop, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    context = server_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    server = HttpServer("127.0.0.1", 0, loop, tls_context=context)
    server.on("exchange", lambda ex: echo(thor.websocket.accept(ex)))  # type: ignore[arg-type]
    errors: list[Exception] = []
    untrusting = WebSocketClient(loop)  # the system CAs: the test CA is unknown
    untrusting.on("error", errors.append)
    untrusting.connect(f"wss://127.0.0.1:{server.port}/")
    run_for_close(loop, lambda: bool(errors))
    assert "TLS" in str(errors[0])

    trusted = client_context()
    ca.configure_trust(trusted)
    client = WebSocketClient(loop, tls_context=trusted)
    got: list[object] = []

    def opened(websocket: WebSocket) -> None:
        websocket.on("message", lambda data: (got.append(data), websocket.close()))
        websocket.on("close", lambda code, reason: loop.stop())
        websocket.send_text("over TLS")

    client.on("open", opened)
    client.on("error", lambda err: (got.append(err), loop.stop()))
    client.connect(f"wss://127.0.0.1:{server.port}/")
    run_for(loop, 5)
    assert got == ["over TLS"]
    server.shutdown()
    assert isinstance(trusted, ssl.SSLContext)


def test_a_paused_reader_pauses_the_sender_then_gets_everything(loop: thor.loop.Loop) -> None:
    """Backpressure both ways: the server stops reading, the client's buffer fills up
    (its ``pause(True)``), the server resumes and every message arrives, in order."""
    received: list[bytes] = []
    server_side: list[WebSocket] = []

    def server_open(websocket: WebSocket) -> None:
        server_side.append(websocket)
        websocket.pause(True)
        websocket.on("message", received.append)

    server = serve(loop, server_open, deflate=False)
    pauses: list[bool] = []
    chunk = b"x" * 65536
    sent = [0]

    def client_open(websocket: WebSocket) -> None:
        def pause(paused: bool) -> None:
            pauses.append(paused)
            if paused:
                server_side[0].pause(False)  # the reader catches up
            else:
                websocket.close()
                loop.stop()

        websocket.on("pause", pause)

        def fill() -> None:
            # Bounded: 4,000 messages of 64 KiB (256 MiB) is far more than the socket buffers.
            while not pauses and sent[0] < 4000:
                websocket.send_bytes(chunk)
                sent[0] += 1
                if sent[0] % 32 == 0:
                    loop.schedule(0, fill)  # let the loop run: the server side must not read
                    return

        fill()

    connect(loop, server.port, client_open, deflate=False)
    run_for(loop, 10)
    assert pauses == [True, False]
    run_for_close(loop, lambda: len(received) == sent[0])
    assert len(received) == sent[0]
    assert all(m == chunk for m in received)
    server.shutdown()


def test_large_messages_from_the_server_to_a_paused_client_arrive_whole_and_in_order(
    loop: thor.loop.Loop,
) -> None:
    """A server's large frames go out as header and payload in one sendmsg, unjoined; when
    the client stops reading, what the kernel does not take is queued from the cut on. Every
    message arrives whole, in order, text and binary alike."""
    received: list[str | bytes] = []
    client_side: list[WebSocket] = []
    pauses: list[bool] = []
    sent: list[str | bytes] = []

    def server_open(websocket: WebSocket) -> None:
        def pause(paused: bool) -> None:
            pauses.append(paused)
            if paused:
                client_side[0].pause(False)  # the reader catches up
            else:
                websocket.close()

        websocket.on("pause", pause)

        def fill() -> None:
            # Bounded: 2,000 messages of ~40 KiB (80 MB) is far more than the socket buffers.
            while not pauses and len(sent) < 2000:
                n = len(sent)
                if n % 2:
                    message: str | bytes = bytes([n % 256]) * (40_000 + n)
                    websocket.send_bytes(message)
                else:
                    message = chr(0x400 + n % 200) * (20_000 + n)  # two bytes a character
                    websocket.send_text(message)
                sent.append(message)
                if len(sent) % 16 == 0:
                    loop.schedule(0, fill)  # let the loop run: the client must not read
                    return

        # Filled once the client is open and paused: the kernel may take little before
        # pausing the writer (TCP_NOTSENT_LOWAT), perhaps before the client's handshake ends.
        start_fill.append(fill)

    start_fill: list[Callable[[], None]] = []
    server = serve(loop, server_open, deflate=False)

    def client_open(websocket: WebSocket) -> None:
        client_side.append(websocket)
        websocket.pause(True)
        websocket.on("message", received.append)
        websocket.on("close", lambda code, reason: loop.stop())
        loop.schedule(0, lambda: start_fill[0]())  # the server opened before the client did

    connect(loop, server.port, client_open, deflate=False)
    run_for(loop, 20)
    assert pauses == [True, False]
    assert len(received) == len(sent)
    assert received == sent
    server.shutdown()


# --- a raw socket as the peer ------------------------------------------------------------


class RawPeer:
    """A Thor server on a loop thread; the test speaks raw bytes to it."""

    def __init__(self, **options: Any) -> None:
        from .test_io_support import ServerOnThread

        self.events: list[tuple[str, Any]] = []
        self.server = ServerOnThread(self.events, **options)

    def __enter__(self) -> RawPeer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def connect(self, head: bytes = HANDSHAKE, extra: bytes = b"\r\n") -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        sock.sendall(head + extra)
        return sock


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_close(sock: socket.socket, rest: bytes) -> int:
    """Read frames until the server's close frame and EOF; the close code."""
    data = rest
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    # Find the close frame (opcode 8) among unmasked server frames.
    pos = 0
    while pos + 2 <= len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        start = pos + 2
        if length == 126:
            length, start = struct.unpack("!H", data[start : start + 2])[0], start + 2
        elif length == 127:
            length, start = struct.unpack("!Q", data[start : start + 8])[0], start + 8
        if opcode == 8:
            return int(struct.unpack("!H", data[start : start + 2])[0])
        pos = start + length
    raise AssertionError(f"no close frame in {data[:100]!r}")


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (HANDSHAKE.replace(b"GET", b"POST"), b"400"),
        (HANDSHAKE.replace(KEY, b"short"), b"400"),
        (HANDSHAKE.replace(b"Connection: Upgrade\r\n", b""), b"400"),
        (HANDSHAKE.replace(b"Version: 13", b"Version: 8"), b"426"),
    ],
)
def test_handshake_failures_are_answered(head: bytes, status: bytes) -> None:
    with RawPeer() as peer, peer.connect(head) as sock:
        answer, _ = read_response(sock)
        assert answer.split(b" ")[1] == status
        if status == b"426":
            assert b"Sec-WebSocket-Version: 13" in answer
    assert not [e for e in peer.events if e[0] == "open"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(1, b"hi", key=None), 1002),  # unmasked from a client (§5.1)
        (client_frame(1, b"\xff\xfe"), 1007),  # not UTF-8
        (client_frame(3, b""), 1002),  # a reserved opcode
        (client_frame(9, b"x" * 126, length_bytes=2), 1002),  # a control frame over 125
        (client_frame(2, b"x" * 2000), 1009),  # over max_message_size
    ],
)
def test_fail_the_connection_over_the_socket(frame: bytes, code: int) -> None:
    with RawPeer(max_message_size=1000) as peer:
        with peer.connect() as sock:
            head, rest = read_response(sock)
            assert head.startswith(b"HTTP/1.1 101 ")
            # A good message first, in the same packet: it is answered before the failure.
            sock.sendall(client_frame(1, b"ok") + frame)
            assert read_close(sock, rest) == code
        peer.server.wait_for(lambda: ("close", code) in peer.events)
        assert ("message", "ok") in peer.events
        assert ("error", code) in peer.events


def test_a_compression_bomb_is_a_1009_not_memory() -> None:
    extension = b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\0" * (64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692 §7.2.1: the tail 00 00 ff ff is not sent
    assert len(bomb) < 100_000  # 64 MiB of zeros in ~64 KiB
    with RawPeer(max_message_size=1 << 20) as peer:
        with peer.connect(extra=extension) as sock:
            head, rest = read_response(sock)
            assert b"permessage-deflate" in head
            sock.sendall(client_frame(2, bomb, rsv=4))
            assert read_close(sock, rest) == 1009
        peer.server.wait_for(lambda: ("close", 1009) in peer.events)


def test_the_peer_vanishing_is_1006() -> None:
    with RawPeer() as peer:
        sock = peer.connect()
        read_response(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, no close frame
        peer.server.wait_for(lambda: ("close", 1006) in peer.events)


def test_a_missing_pong_closes_with_1011() -> None:
    with RawPeer(ping_interval=0.05, ping_timeout=0.1) as peer:
        with peer.connect() as sock:
            _, rest = read_response(sock)
            # This peer never answers the pings: the server gives up with 1011.
            assert read_close(sock, rest) == 1011
        peer.server.wait_for(lambda: ("close", 1011) in peer.events)


def test_a_peer_that_never_answers_our_close_is_cut_after_close_timeout() -> None:
    with RawPeer(close_timeout=0.2, close_on_open=True) as peer, peer.connect() as sock:
        _, rest = read_response(sock)
        assert read_close(sock, rest) == 1000  # then EOF: the server cut us after 0.2 s
        peer.server.wait_for(lambda: ("close", 1006) in peer.events)


def test_the_close_handshake_from_the_client_side() -> None:
    with RawPeer() as peer:
        with peer.connect() as sock:
            _, rest = read_response(sock)
            payload = struct.pack("!H", 4001) + b"bye"
            sock.sendall(client_frame(8, payload))
            assert read_close(sock, rest) == 4001  # echoed (§5.5.1), then the server closes TCP
        peer.server.wait_for(lambda: ("close", 4001) in peer.events)
        assert ("reason", "bye") in peer.events


def test_the_exchange_tells_the_listeners_set_before_accept_of_its_websocket(
    loop: thor.loop.Loop,
) -> None:
    server = HttpServer("127.0.0.1", 0, loop)
    heard: list[Any] = []
    returned: list[Any] = []

    def exchange(ex: Any) -> None:
        ex.on("websocket", heard.append)  # as the gateway does, to close them when it stops
        returned.append(thor.websocket.accept(ex))

    server.on("exchange", exchange)
    errors = connect(loop, server.port, lambda websocket: loop.stop())
    run_for(loop, 5)
    assert not errors
    assert len(returned) == 1
    assert isinstance(returned[0], WebSocket)
    assert heard == returned  # the same object, once
    server.shutdown()
