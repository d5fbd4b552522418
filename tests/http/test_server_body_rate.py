"""The server's minimum request body rate (``min_body_rate`` over ``min_rate_window``).

A client that sends a byte every few tenths of a second makes progress, so
``body_timeout`` never fires; the rate does (issue 16, finding 1).  Real sockets on
loopback; the windows are short so that each test takes about a second.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from tests.http.client_support import wait_for
from tests.http.server_helpers import ServerThread, how_it_ends, read_all
from thor.http.server import HttpServerExchange


def body_length(ex: HttpServerExchange) -> None:
    """Answer the length of the request body, once it is all here."""
    received = [0]

    def on_body(chunk: bytes) -> None:
        received[0] += len(chunk)

    def on_done(_trailers: object) -> None:
        body = b"%d" % received[0]
        ex.response_start(200, b"OK", [(b"Content-Length", b"%d" % len(body))])
        ex.response_body(body)
        ex.response_done([])

    ex.on("request_body", on_body)
    ex.on("request_done", on_done)


def trickle(port: int, total: int, piece: int, step: float, limit: float) -> tuple[bytes, float]:
    """POST ``total`` bytes, ``piece`` at a time every ``step`` s, for at most ``limit`` s;
    return the response and when it came (seconds after the head was sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit + 3) as sock:
        start = time.monotonic()
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % total
        )
        sent = 0
        try:
            while sent < total and time.monotonic() - start < limit:
                sock.sendall(b"x" * min(piece, total - sent))
                sent += piece
                # The client's pace, cut short by the server's answer.
                if select.select([sock], [], [], step)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut while sending: the response is read below
        first = sock.recv(65536)
        after = time.monotonic() - start
        return first + read_all(sock), after


def test_a_trickled_body_is_cut_with_408() -> None:
    # 10 bytes/s against a minimum of 100 bytes/s; body_timeout (30 s) would never fire.
    with ServerThread(body_length, min_body_rate=100, min_rate_window=0.5) as live:
        raw, after = trickle(live.port, 10_000, 1, 0.1, limit=5.0)
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:80]
    assert after < 2.5, f"cut only after {after:.1f} s"


def test_a_body_above_the_rate_completes() -> None:
    # 2000 bytes/s against a minimum of 100 bytes/s, over three windows.
    with ServerThread(body_length, min_body_rate=100, min_rate_window=0.5) as live:
        raw, _ = trickle(live.port, 3000, 200, 0.1, limit=5.0)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
    assert raw.endswith(b"\r\n\r\n3000")


def test_the_rate_check_can_be_turned_off() -> None:
    with ServerThread(body_length, min_body_rate=0, min_rate_window=0.3) as live:
        raw, after = trickle(live.port, 12, 1, 0.1, limit=5.0)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
    assert after > 1.0  # it did trickle past several windows


def test_time_the_application_does_not_read_is_not_counted() -> None:
    """A paused body (the application is not reading) is not the client's slowness."""

    def paused_then_read(ex: HttpServerExchange) -> None:
        body_length(ex)
        ex.pause_request_body(True)
        ex.loop.schedule(1.2, ex.pause_request_body, False)

    with (
        ServerThread(paused_then_read, min_body_rate=1000, min_rate_window=0.4) as live,
        socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock,
    ):
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
        )
        raw = read_all(sock)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]


# ------------------------------------------------------------ the response's rate

BIG = b"y" * (8 << 20)  # more than the kernel's socket buffers take: most waits in ours


def big_response(ex: HttpServerExchange) -> None:
    ex.on(
        "request_start",
        lambda *_: ex.respond(200, b"OK", [(b"Content-Length", b"%d" % len(BIG))], BIG),
    )


def sip(port: int, stop: threading.Event) -> None:
    """GET the big response and read 100 bytes every 0.1 s (1 KB/s) until ``stop``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    with sock:
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        while not stop.wait(0.1):  # the client's pace
            try:
                if not sock.recv(100):
                    return
            except OSError:
                return


def served_while_sipping(live: ServerThread, seconds: float) -> float | None:
    """When the server let go of the sipping client (None: it still serves it after
    ``seconds``).  The server's abort drops what our buffer holds; what the kernel took
    already still trickles to the client, so the server's side is what is watched."""
    stop = threading.Event()
    client = threading.Thread(target=sip, args=(live.port, stop), daemon=True)
    start = time.monotonic()
    client.start()
    try:
        wait_for(lambda: bool(live.server.connections))
        while time.monotonic() - start < seconds:
            if not live.server.connections:
                return time.monotonic() - start
            stop.wait(0.05)
        return None
    finally:
        stop.set()
        client.join(5)


def test_a_client_that_sips_its_response_is_cut() -> None:
    # 1 KB/s against a minimum of 100 KB/s; write_timeout (30 s) would wait much longer.
    with ServerThread(big_response, min_response_rate=100_000, min_rate_window=0.5) as live:
        after = served_while_sipping(live, 5.0)
    assert after is not None, "the server still serves the client"
    assert after < 2.5, f"cut only after {after:.1f} s"


def test_the_response_rate_check_can_be_turned_off() -> None:
    with ServerThread(big_response, min_response_rate=0, min_rate_window=0.3) as live:
        assert served_while_sipping(live, 1.5) is None


def test_a_client_cut_for_sipping_gets_no_more_of_what_the_kernel_holds() -> None:
    # The cut resets the connection: the bytes the kernel already took are dropped with it,
    # else they trickle on to the client (and fill the kernel's memory: 1000 slow readers
    # of 1 MiB held a gigabyte of socket buffers, issue 16) long after the server let go.
    with ServerThread(big_response, min_response_rate=100_000, min_rate_window=0.5) as live:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        with sock:
            sock.connect(("127.0.0.1", live.port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            wait_for(lambda: bool(live.server.connections))
            start = time.monotonic()
            while live.server.connections and time.monotonic() - start < 5:
                sock.recv(100)  # 1 KB/s
                time.sleep(0.1)
            assert not live.server.connections, "the server still serves the client"
            # Now read fast: what is in our receive buffer, then the reset (not the rest of
            # the kernel's send queue and a FIN).
            ended, received = how_it_ends(sock)
            assert ended == "a reset", f"{ended} after {received} more bytes"
