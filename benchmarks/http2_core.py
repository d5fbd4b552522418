"""CPU per request of the sans-IO HTTP/2 server core, in memory, against ``h2``'s.

A browser-like GET (9 fields, HPACK-compressed by an ``h2`` client, so the blocks after the
first are mostly indexed) is fed to a server connection, which answers with a 3-field head
and a 13-byte body; the bytes to send are taken after each request.  No socket: this is the
protocol work alone, the part of HTTP/2 serving that the core decides.  CPU time
(``process_time``), best of ``--repeat`` runs.

    python benchmarks/http2_core.py --requests 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h2.config  # the benchmark's rival and client (a test extra)
import h2.connection
import h2.events

from thor.http2.protocol import H2Config, H2Connection, RequestReceived

FIELDS = [
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "example.com"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-language", "en-US,en;q=0.9"),
    ("cookie", "session=abcdefghijklmnopqrstuvwxyz0123456789"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"13")]


def client_bytes(count: int) -> tuple[bytes, list[bytes]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    preface = client.data_to_send()
    requests = []
    for index in range(count):
        client.send_headers(1 + 2 * index, FIELDS, end_stream=True)
        requests.append(client.data_to_send())
    return preface, requests


def thor_server(preface: bytes, requests: list[bytes]) -> float:
    server = H2Connection(H2Config(max_concurrent_streams=10**6))
    server.initiate_connection()
    server.receive_data(preface)
    server.data_to_send()
    start = time.process_time()
    for data in requests:
        for event in server.receive_data(data):
            if type(event) is RequestReceived:
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, b"Hello, world!", end_stream=True)
        server.data_to_send()
    return time.process_time() - start


def h2_server(preface: bytes, requests: list[bytes]) -> float:
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = h2.connection.H2Connection(config)
    server.initiate_connection()
    server.receive_data(preface)
    server.data_to_send()
    start = time.process_time()
    for data in requests:
        for event in server.receive_data(data):
            if type(event) is h2.events.RequestReceived:
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, b"Hello, world!", end_stream=True)
        server.data_to_send()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    preface, requests = client_bytes(args.requests)
    servers: dict[str, Callable[[bytes, list[bytes]], float]] = {
        "thor": thor_server,
        "h2": h2_server,
    }
    results = {}
    for name, run in servers.items():
        best = min(run(preface, requests) for _ in range(args.repeat))
        results[name] = best / args.requests * 1e6
        print(f"{name:5} {results[name]:8.1f} µs CPU per request")
    print(f"h2 / thor: {results['h2'] / results['thor']:.1f}x")


if __name__ == "__main__":
    main()
