"""Parser and writer micro-benchmarks: µs per request, and the ratio to h11 when installed.

Run: python benchmarks/parser_bench.py
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

from thor.http.protocol import RequestParser, ResponseWriter

GET = (
    b"GET /index.html?q=1 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: bench/1.0\r\n"
    b"Accept: text/html,application/xhtml+xml\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Cookie: session=abcdef0123456789\r\n"
    b"\r\n"
)
BATCH = GET * 10
BODY = b"x" * 65536
POST = b"POST /upload HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 65536\r\n\r\n" + BODY


def thor_parse(data: bytes) -> Callable[[], object]:
    """A new parser per call, as h11 needs a new Connection per call."""

    def go() -> object:
        return RequestParser().feed(data)

    return go


def thor_write() -> object:
    writer = ResponseWriter(b"GET", b"1.1", True)
    return (
        writer.start(200, b"OK", [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")])
        + writer.body(b"hello")
        + writer.end()
    )


def h11_parse(data: bytes) -> Callable[[], object] | None:
    try:
        import h11
    except ImportError:
        return None

    def go() -> object:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        events = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                # h11 pauses after each request until the response is sent: answer and start
                # a new cycle so that a pipelined batch can be measured as well.
                if conn.their_state is h11.DONE and conn.our_state is h11.SEND_RESPONSE:
                    conn.send(h11.Response(status_code=204, headers=[]))
                    conn.send(h11.EndOfMessage())
                    conn.start_next_cycle()
                    continue
                break
            events.append(event)
        return events

    return go


def per_call_us(func: Callable[[], object], per: int, number: int) -> float:
    # CPU time of this process, not wall time: on a shared machine the figures then do not
    # include the time other processes hold the CPU.
    return timeit.Timer(func, timer=time.process_time).timeit(number) / number / per * 1e6


def best_of(funcs: list[Callable[[], object]], per: int, rounds: int = 9) -> list[float]:
    """Best time of each function, measured in alternation so that both see the same load."""
    numbers = [max(1, int(timeit.Timer(f).autorange()[0] / 2)) for f in funcs]
    best = [float("inf")] * len(funcs)
    for _ in range(rounds):
        for i, func in enumerate(funcs):
            best[i] = min(best[i], per_call_us(func, per, numbers[i]))
    return best


def main() -> None:
    cases = [
        ("GET, 5 headers", GET, 1),
        ("pipelined batch of 10 GETs (per request)", BATCH, 10),
        ("POST with 64 KiB Content-Length body", POST, 1),
    ]
    print(f"{'case':46} {'thor µs':>9} {'h11 µs':>9} {'h11/thor':>9}")
    for name, data, per in cases:
        theirs_func = h11_parse(data)
        if theirs_func is None:
            (ours,) = best_of([thor_parse(data)], per)
            print(f"{name:46} {ours:9.2f} {'-':>9} {'-':>9}")
            continue
        ours, theirs = best_of([thor_parse(data), theirs_func], per)
        print(f"{name:46} {ours:9.2f} {theirs:9.2f} {theirs / ours:8.1f}x")
    live = RequestParser()  # a keep-alive connection: the parser already exists
    (reused,) = best_of([lambda: live.feed(GET)], 1)
    print(f"{'GET, 5 headers, on an existing connection':46} {reused:9.2f}")
    (writer,) = best_of([thor_write], 1)
    print(f"{'ResponseWriter 200 + CL + 5-byte body':46} {writer:9.2f}")


if __name__ == "__main__":
    main()
