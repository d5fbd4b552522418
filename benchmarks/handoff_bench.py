"""Loop <-> worker hand-off cost: hello-world over keep-alive connections, per variant.

Each variant runs a server in its own process (HttpServer + one handler mounted at
/, the loop on the main thread) and a load client in another process: ``--conns``
keep-alive connections, each sending a request as soon as its previous response
arrived (no pipelining), for ``--seconds`` after a warm-up.  Prints req/s.

Variants:
  native          a native Thor handler: no thread hop at all (upper bound)
  wsgi            the WSGI adapter as shipped (a burst of tasks wakes one worker; a
                  list response is ONE quiet post, the loop woken once per burst)
  wsgi-split      same, but the response is posted as three run_in_loop calls
  wsgi-eager      the pool without its loop: every task wakes a worker, every
                  response wakes the loop (the classic thread-pool hand-off)
  wsgi-gen        the app yields its body (streamed path: start+chunk, then end)
  asgi            the ASGI adapter (asyncio thread; batched Thor -> asyncio calls)
Any variant accepts ``:si=<seconds>`` to set sys.setswitchinterval in the server,
e.g. ``wsgi:si=0.0005``.

    python benchmarks/handoff_bench.py --conns 16 --seconds 5 native wsgi wsgi-split
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from support import cpu_seconds  # noqa: E402 (benchmarks/ is the script's folder)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
BODY = b"Hello, World!"


# ------------------------------------------------------------------ server side


def wsgi_list_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY]


def wsgi_gen_app(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    yield BODY


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def native_app(exchange: Any) -> None:
    # Answers at request_done: the server closes a connection whose response ended
    # before the request did (even a GET without body, at request_start).
    def done(trailers: Any) -> None:
        headers = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"13")]
        exchange.response_start(200, b"OK", headers)
        exchange.response_body(BODY)
        exchange.response_done([])

    exchange.on("request_done", done)


def split_complete(self: Any, body: bytes, sized: bool) -> None:
    """_WsgiTask._complete posting start, body and end as three calls (the naive way)."""
    start = self._take_start()
    if start is not None and sized:
        start[2].append((b"Content-Length", str(len(body)).encode()))
    self._phase = type(self._phase).DONE
    loop = self._handler.loop
    exchange = self._exchange
    if start is not None:
        loop.run_in_loop(exchange.response_start, *start)
    loop.run_in_loop(exchange.response_body, body)
    loop.run_in_loop(exchange.response_done, [])


def eager_complete(self: Any, body: bytes, sized: bool) -> None:
    """_WsgiTask._complete waking the loop for every response."""
    start = self._take_start()
    if start is not None and sized:
        start[2].append((b"Content-Length", str(len(body)).encode()))
    self._phase = type(self._phase).DONE
    self._handler.loop.run_in_loop(self._finish, start, body)


def make_handler(kind: str, loop: Any, threads: int) -> Any:
    from thor_gateway.hosting import wsgi
    from thor_gateway.hosting.asgi import AsgiHandler
    from thor_gateway.hosting.native import NativeHandler

    if kind == "native":
        return NativeHandler(native_app)
    if kind == "asgi":
        return AsgiHandler(asgi_app, loop=loop, lifespan="off")
    app = wsgi_gen_app if kind == "wsgi-gen" else wsgi_list_app
    handler = wsgi.WsgiHandler(app, threads=threads, max_queue=4096, loop=loop)
    if kind == "wsgi-eager":
        handler.pool.loop = None
        handler.pool.on_idle = None
        wsgi._WsgiTask._complete = eager_complete  # type: ignore[method-assign]
    elif kind == "wsgi-split":
        wsgi._WsgiTask._complete = split_complete  # type: ignore[method-assign]
    elif kind not in ("wsgi", "wsgi-gen"):
        raise SystemExit(f"unknown variant {kind!r}")
    return handler


def serve(variant: str, threads: int) -> None:
    import thor.loop
    from thor.http.server import HttpServer
    from thor_gateway.routing.request import request_at_mount

    kind, _, option = variant.partition(":")
    if option.startswith("si="):
        sys.setswitchinterval(float(option[3:]))
    loop = thor.loop.make()
    server = HttpServer("127.0.0.1", 0, loop=loop)
    handler = make_handler(kind, loop, threads)
    if kind == "asgi":
        handler.startup(lambda exc: None)

    def on_exchange(exchange: Any) -> None:  # as the gateway's router does
        request = request_at_mount(exchange, exchange.method, exchange.uri, exchange.req_hdrs)
        handler.handle(exchange, request)

    server.on("exchange", on_exchange)
    print(server.port, flush=True)
    loop.run()


def micro(variant: str, threads: int, inflight: int, rounds: int) -> float:
    """Round trips per second, loop -> pool -> loop, without sockets."""
    import thor.loop
    from thor_gateway.hosting.threadpool import ThreadPool

    kind, _, option = variant.partition(":")
    if option.startswith("si="):
        sys.setswitchinterval(float(option[3:]))
    loop = thor.loop.make()
    if kind == "batched":
        pool = ThreadPool(threads, rounds, loop=loop, on_idle=loop.wake)
        post = loop.post
    elif kind == "eager":
        pool = ThreadPool(threads, rounds)
        post = loop.run_in_loop
    else:
        raise SystemExit(f"unknown micro variant {kind!r}")
    done = [0]

    def back() -> None:
        done[0] += 1
        if done[0] >= rounds:
            loop.stop()
        else:
            pool.submit(task)

    def task() -> None:
        post(back)

    for _ in range(inflight):
        pool.submit(task)
    start = time.perf_counter()
    loop.run()
    elapsed = time.perf_counter() - start
    pool.shutdown(wait=False)
    return done[0] / elapsed


# ------------------------------------------------------------------ client side


def load(port: int, pid: int, conns: int, seconds: float, warmup: float) -> tuple[float, float]:
    """Closed-loop load: each connection sends its next request when a response ends.

    Returns (requests per second, server CPU microseconds per request).
    """
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    for _ in range(conns):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
        sock.send(REQUEST)
    start = time.monotonic()
    measure_from = start + warmup
    end = measure_from + seconds
    counted = 0
    cpu_start = -1.0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key, _ in selector.select(0.5):
            sock = key.fileobj  # type: ignore[assignment]
            data = sock.recv(65536)  # type: ignore[attr-defined]
            if not data:
                raise SystemExit("the server closed a connection")
            buffer = buffers[sock] + data  # type: ignore[index]
            while True:
                size = _response_size(buffer)
                if size is None:
                    break
                buffer = buffer[size:]
                if time.monotonic() >= measure_from:
                    if cpu_start < 0:
                        cpu_start = cpu_seconds(pid)
                    counted += 1
                sock.send(REQUEST)  # type: ignore[attr-defined]
            buffers[sock] = buffer  # type: ignore[index]
    cpu = cpu_seconds(pid) - cpu_start
    return counted / seconds, cpu / max(counted, 1) * 1e6


def _response_size(buffer: bytes) -> int | None:
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buffer[:head_end].lower()
    body_start = head_end + 4
    marker = head.find(b"content-length:")
    if marker >= 0:
        line_end = head.find(b"\r\n", marker)
        length = int(head[marker + 15 : line_end if line_end >= 0 else None])
        return body_start + length if len(buffer) >= body_start + length else None
    end = buffer.find(b"\r\n0\r\n\r\n", body_start - 2)
    return end + 7 if end >= 0 else None


def run_variant(variant: str, args: argparse.Namespace) -> tuple[float, float]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", variant, "--threads", str(args.threads)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                str(port),
                "--pid",
                str(server.pid),
                "--conns",
                str(args.conns),
                "--seconds",
                str(args.seconds),
            ],
            capture_output=True,
            text=True,
            timeout=args.seconds + 60,
            check=True,
        )
        rate, cpu = client.stdout.split()
        return float(rate), float(cpu)
    finally:
        server.kill()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["native", "wsgi", "wsgi-split"])
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--micro",
        action="store_true",
        help="measure loop -> pool -> loop round trips without sockets; variants: "
        "batched (the pool on its loop, quiet posts), eager (no loop: a wake-up per "
        "task and per result), each with an optional :si=<seconds>",
    )
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--micro-run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.threads)
        return
    if args.micro_run:
        print(micro(args.micro_run, args.threads, args.inflight, 20000))
        return
    if args.micro:
        print(f"# round trips/s, {args.inflight} in flight, {args.threads} threads")
        for variant in args.variants:
            rates = [
                float(
                    subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--micro-run",
                            variant,
                            "--threads",
                            str(args.threads),
                            "--inflight",
                            str(args.inflight),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=120,
                    ).stdout
                )
                for _ in range(args.repeat)
            ]
            shown = " ".join(f"{rate:.0f}" for rate in rates)
            print(f"{variant:20s} {statistics.median(rates):8.0f}   ({shown})", flush=True)
        return
    if args.client:
        print(*load(args.client, args.pid, args.conns, args.seconds, args.warmup))
        return
    print(f"# {args.conns} keep-alive connections, {args.seconds:g} s, {args.threads} threads")
    # Round-robin over the variants, so that a noisy neighbour hits them all alike.
    results: dict[str, list[tuple[float, float]]] = {variant: [] for variant in args.variants}
    for _ in range(args.repeat):
        for variant in args.variants:
            results[variant].append(run_variant(variant, args))
    print(f"{'variant':20s} {'req/s':>7s} {'CPU us/req':>10s}   runs (req/s / us)")
    for variant, values in results.items():
        rate = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        shown = " ".join(f"{r:.0f}/{c:.0f}" for r, c in values)
        print(f"{variant:20s} {rate:7.0f} {cpu:10.0f}   ({shown})", flush=True)


if __name__ == "__main__":
    main()
