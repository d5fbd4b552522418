"""Parser and writer micro-benchmarks: µs per request, and the ratio to h11 when installed.

Run: python benchmarks/parser_bench.py [--instructions]

With ``--instructions`` (needs valgrind) it also counts the machine instructions of one
iteration of each server hot-path case with callgrind, which unlike wall time does not depend
on the load of the machine: I(N) is counted for N = 200 and 1200 iterations after a warm-up,
and (I(1200) - I(200)) / 1000 is printed next to the count recorded before the hot-path work
(commit 3a4bc51, same method, CPython 3.11.7).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


# The server's hot path, per request: the wrk request on a keep-alive connection, a small
# form POST and a chunked upload (each one whole read), and the response to a hello app.
HOT_GET = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
HOT_POST = (
    b"POST /submit HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nhello=world"
)
HOT_CHUNKED = (
    b"POST /upload HTTP/1.1\r\nHost: localhost:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)
HOT_EXTRA = b"Date: Wed, 25 Nov 2026 18:00:00 GMT\r\nServer: thor\r\n"
HOT_FIELDS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")]


def hot_write() -> bytes:
    writer = ResponseWriter(b"GET", b"1.1", True)
    head = writer.start(200, b"OK", HOT_FIELDS, extra=HOT_EXTRA)
    return head + writer.body(b"Hello, world!") + writer.end([])


def hot_cases() -> dict[str, Callable[[], object]]:
    live = RequestParser()  # one keep-alive connection for the three request cases
    return {
        "GET (wrk), existing connection": lambda: live.feed(HOT_GET),
        "POST, Content-Length 11, same read": lambda: live.feed(HOT_POST),
        "POST, chunked (2 chunks), same read": lambda: live.feed(HOT_CHUNKED),
        "ResponseWriter() + start + body + end": hot_write,
    }


# Instructions per iteration before this work (commit 3a4bc51), counted as described above.
BASELINE_INSTRUCTIONS = {
    "GET (wrk), existing connection": 86_429,
    "POST, Content-Length 11, same read": 108_859,
    "POST, chunked (2 chunks), same read": 151_438,
    "ResponseWriter() + start + body + end": 62_509,
}


def run_loop(name: str, count: int) -> None:
    """The body of a callgrind run: a warm-up, then ``count`` iterations of one case."""
    func = hot_cases()[name]
    for _ in range(200):
        func()
    for _ in range(count):
        func()


def instructions(name: str) -> float | None:
    """Instructions per iteration of a hot case under callgrind, or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = []
    for count in (200, 1200):
        command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        done = subprocess.run(
            [*command, sys.executable, __file__, "--loop", name, str(count)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found is not None, done.stderr[-500:]
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / 1000


def hot_path_report(count_instructions: bool) -> None:
    print()
    header = f"{'server hot path, per iteration':40} {'µs':>7}"
    if count_instructions:
        header += f" {'instr. now':>11} {'before':>9} {'now/before':>10}"
    print(header)
    for name, func in hot_cases().items():
        (us,) = best_of([func], 1)
        line = f"{name:40} {us:7.2f}"
        if count_instructions:
            now = instructions(name)
            before = BASELINE_INSTRUCTIONS[name]
            if now is None:
                line += "  (valgrind not found)"
            else:
                line += f" {now:11,.0f} {before:9,} {now / before:9.0%}"
        print(line)


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
    if sys.argv[1:2] == ["--loop"]:
        run_loop(sys.argv[2], int(sys.argv[3]))
    else:
        main()
        hot_path_report("--instructions" in sys.argv[1:])
