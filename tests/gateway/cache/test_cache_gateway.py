"""thor-gateway --cache end to end: the CLI in a subprocess, an origin on loopback that counts.

Each test asks the origin how many requests reached it: a hit must not be one of them.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.gateway.gateway_helpers import poll

BIG = 200_000
LARGE = random.Random(15).randbytes(3_000_000)  # (no period: an offset error shows)


class Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.counts: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()
        self.fields: dict[str, list[dict[str, str]]] = {}  # each request's, by path
        self.release = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Origin

    def do_GET(self) -> None:
        path = self.path
        with self.server.lock:
            self.server.counts[path] += 1
            count = self.server.counts[path]
            if self.headers.get("If-None-Match"):
                self.server.conditional[path] += 1
            self.server.fields.setdefault(path, []).append(dict(self.headers.items()))
        if path == "/vanish" and count > 2:
            self.close_connection = True  # no answer at all: the proxy's own 502
            return
        if path == "/slow":
            self.server.release.wait(5)  # bounded: the test sets it
        if path in ("/large", "/trickle"):
            self.send_response(200)
            self.send_header("Cache-Control", "max-age=60")
            self.send_header("Content-Length", str(len(LARGE)))
            self.end_headers()
            half = len(LARGE) // 2
            self.wfile.write(LARGE[:half])
            self.wfile.flush()
            if path == "/trickle":
                self.server.release.wait(5)  # bounded: the test sets it
            self.wfile.write(LARGE[half:])
            return
        if path == "/validated" and self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("Cache-Control", "max-age=0")
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        body = b"x" * BIG if path == "/big" else b"%s %d" % (path.encode(), count)
        self.send_response(200)
        control = {"/validated": "max-age=0", "/unstored": "no-store", "/vanish": "no-store"}.get(
            path, "max-age=60"
        )
        if path == "/turns":  # not stored twice, then storable
            control = "no-store" if count <= 2 else "max-age=60"
        self.send_header("Cache-Control", control)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def origin() -> Iterator[Origin]:
    server = Origin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def metric(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_the_cache_flag_answers_hits_without_the_origin(start_gateway: Any) -> None:
    with origin() as up:
        gateway = start_gateway(
            "-b",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
            "--proxy",
            f"/={up.url}",
            "--cache",
        )
        with requests.Session() as session:
            first = session.get(gateway.url + "/fresh", timeout=10)
            assert first.headers["Cache-Status"] == "thor; fwd=miss; fwd-status=200; stored"
            for _ in range(3):
                again = session.get(gateway.url + "/fresh", timeout=10)
                assert again.text == "/fresh 1"
                assert again.headers["Cache-Status"] == "thor; hit"
                assert int(again.headers["Age"]) >= 0
            head = session.head(gateway.url + "/fresh", timeout=10)
            assert head.status_code == 200
            assert head.headers["Cache-Status"] == "thor; hit"
            # a stale response is validated: the origin's 304 becomes the stored 200
            assert session.get(gateway.url + "/validated", timeout=10).text == "/validated 1"
            validated = session.get(gateway.url + "/validated", timeout=10)
            assert validated.status_code == 200
            assert validated.text == "/validated 1"
            assert validated.headers["Cache-Status"] == "thor; fwd=stale; fwd-status=304"
        assert up.counts == {"/fresh": 1, "/validated": 2}
        assert up.conditional == {"/validated": 1}
        assert metric(gateway.metrics_port, "thor_cache_hits_total") == 4
        assert metric(gateway.metrics_port, "thor_cache_misses_total") == 2
        assert metric(gateway.metrics_port, "thor_cache_stale_total") == 1
        assert metric(gateway.metrics_port, "thor_cache_bytes") > 0
        assert gateway.stop() == 0


def test_a_fetch_goes_upstream_with_the_forwarding_and_the_cache_s_own_fields(
    start_gateway: Any,
) -> None:
    # The proxy relays a cache's fetch straight into the store (ProxyHandler.cache_fetch):
    # the request still gets the proxy's forwarding fields, and the cache's own fields
    # (Surrogate-Capability; on validation, the stored validators) once each.
    with origin() as up:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache")
        with requests.Session() as session:
            for _ in range(2):  # a miss, then the validation of the stale response
                answer = session.get(gateway.url + "/validated", timeout=10)
                assert answer.text == "/validated 1"
        first, second = up.fields["/validated"]
        for fields in (first, second):
            assert fields["Surrogate-Capability"] == 'thor="Surrogate/1.0"'
            assert fields["Via"] == "1.1 thor"
            assert fields["X-Forwarded-For"] == "127.0.0.1"
            assert fields["Host"] == up.url.removeprefix("http://")
        assert "If-None-Match" not in first
        assert second["If-None-Match"] == '"v1"'
        assert gateway.stop() == 0


def test_a_body_that_came_in_chunks_is_served_whole_from_memory(start_gateway: Any) -> None:
    # The memory store keeps the chunks as they came and joins them at the first hit
    # (Entry.whole): the hits, and a range cut from the stored response, are the body.
    with origin() as up:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache")
        with requests.Session() as session:
            miss = session.get(gateway.url + "/large", timeout=20)
            assert miss.content == LARGE
            assert miss.headers["Cache-Status"] == "thor; fwd=miss; fwd-status=200; stored"
            for _ in range(2):
                hit = session.get(gateway.url + "/large", timeout=20)
                assert hit.headers["Cache-Status"] == "thor; hit"
                assert hit.content == LARGE
            ranged = session.get(
                gateway.url + "/large", headers={"Range": "bytes=5-14"}, timeout=20
            )
            assert (ranged.status_code, ranged.content) == (206, LARGE[5:15])
        assert up.counts["/large"] == 1
        assert gateway.stop() == 0


def test_a_stored_response_counts_its_head_as_it_came(start_gateway: Any) -> None:
    # A raw origin: the head's bytes are known exactly, and the store counts them (with the
    # body and 256 for the entry) rather than summing the fields again.
    head = (
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-Padding: %s\r\n"
        b"Content-Length: 5\r\n\r\n" % (b"p" * 300)
    )
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            asked = b""
            while b"\r\n\r\n" not in asked:
                asked += conn.recv(65536)
            conn.sendall(head + b"hello")
            conn.recv(1)  # until the gateway closes its idle connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    gateway = start_gateway(
        "-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0",
        "--proxy", f"/=http://127.0.0.1:{listener.getsockname()[1]}", "--cache",
    )  # fmt: skip
    got = requests.get(gateway.url + "/counted", timeout=10)
    assert got.headers["Cache-Status"] == "thor; fwd=miss; fwd-status=200; stored"
    assert metric(gateway.metrics_port, "thor_cache_bytes") == len(head) + 5 + 256
    assert gateway.stop() == 0
    listener.close()
    thread.join(10)


def test_a_passed_miss_goes_upstream_with_the_cache_s_own_fields(start_gateway: Any) -> None:
    # After a no-store answer the URL is passed (passing.py): the proxy forwards the
    # client's own request with the cache's Surrogate-Capability added (cache_pass), and
    # the answer gets the Cache-Status of a miss not stored.
    with origin() as up:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache")
        with requests.Session() as session:
            for count in (1, 2, 3):  # a Fetch, then two passed requests
                answer = session.get(gateway.url + "/unstored", timeout=10)
                assert answer.text == f"/unstored {count}"
                assert answer.headers["Cache-Status"] == "thor; fwd=miss; fwd-status=200"
        assert up.counts["/unstored"] == 3
        for fields in up.fields["/unstored"]:
            assert fields["Surrogate-Capability"] == 'thor="Surrogate/1.0"'
            assert fields["Via"] == "1.1 thor"
            assert fields["X-Forwarded-For"] == "127.0.0.1"
        assert gateway.stop() == 0


def test_a_passed_url_whose_answer_changes_is_stored_again(start_gateway: Any) -> None:
    # The proxy relays a passed miss's head through the cache's Pass (cache_pass): when the
    # response's Cache-Control is no longer the one that made the pass, the mark goes, and
    # the next request is a miss that stores.
    with origin() as up:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache")
        miss = "thor; fwd=miss; fwd-status=200"
        with requests.Session() as session:
            statuses = [
                session.get(gateway.url + "/turns", timeout=10).headers["Cache-Status"]
                for _ in range(5)
            ]
        # a Fetch (no-store), a pass (no-store), a pass (max-age=60: the mark goes), a
        # Fetch that stores, a hit
        assert statuses == [miss, miss, miss, miss + "; stored", "thor; hit"]
        assert up.counts["/turns"] == 4
        assert gateway.stop() == 0


def test_the_proxy_s_own_answer_to_a_passed_miss_has_its_cache_status(start_gateway: Any) -> None:
    # A passed miss whose upstream does not answer gets the proxy's 502, relayed through
    # the cache's Pass like an upstream's answer: with Cache-Status.
    with origin() as up:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache")
        with requests.Session() as session:  # (nothing of it kept: no connection left idle)
            got = [session.get(gateway.url + "/vanish", timeout=10) for _ in range(3)]
            answers = [(a.status_code, a.headers.get("Cache-Status")) for a in got]
            del got
        assert answers[:2] == [(200, "thor; fwd=miss; fwd-status=200")] * 2
        assert answers[2] == (502, "thor; fwd=miss; fwd-status=502")
        assert gateway.stop() == 0


def test_a_request_to_switch_protocols_passes_by_the_cache(start_gateway: Any) -> None:
    # RFC 9110 §7.8: a GET that asks to switch protocols is the proxy's to relay (a 101 is
    # not stored); this origin does not switch, and answers it as a plain GET.
    with origin() as up:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache")
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket"}
        with requests.Session() as session:
            for count in (1, 2):
                answer = session.get(gateway.url + "/fresh", headers=upgrade, timeout=10)
                assert answer.text == f"/fresh {count}"
                assert "Cache-Status" not in answer.headers
            miss = session.get(gateway.url + "/fresh", timeout=10)  # nothing was stored
            assert miss.headers["Cache-Status"] == "thor; fwd=miss; fwd-status=200; stored"
            assert session.get(gateway.url + "/fresh", timeout=10).text == "/fresh 3"
        assert up.counts["/fresh"] == 3
        assert gateway.stop() == 0


def test_a_client_that_leaves_a_storing_fetch_leaves_it_to_finish(start_gateway: Any) -> None:
    # The response is being stored: the fetch goes on without its client, and the next
    # request for it is a hit.
    with origin() as up:
        gateway = start_gateway(
            *("-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"),
            *("--proxy", f"/={up.url}", "--cache"),
        )
        host, port = gateway.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(b"GET /trickle HTTP/1.1\r\nHost: cached\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:  # the head, then the client leaves
                chunk = client.recv(65536)
                assert chunk, head
                head += chunk
            assert head.startswith(b"HTTP/1.1 200")
        up.release.set()  # (the client left; the other half follows)
        poll(lambda: metric(gateway.metrics_port, "thor_cache_stored_total") == 1, 30, "stored")
        hit = requests.get(gateway.url + "/trickle", headers={"Host": "cached"}, timeout=10)
        assert hit.headers["Cache-Status"] == "thor; hit"
        assert hit.content == LARGE
        assert up.counts["/trickle"] == 1
        assert gateway.stop() == 0


def test_cache_status_in_the_access_log(start_gateway: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with origin() as up:
        gateway = start_gateway(
            *("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache"),
            *("--access-logfile", str(log), "--access-logformat", '"%(r)s" %(s)s "%(C)s"'),
        )
        with requests.Session() as session:
            for path in ("/fresh", "/fresh", "/validated", "/validated"):
                session.get(gateway.url + path, timeout=10)
            session.post(gateway.url + "/fresh", timeout=10)
        poll(lambda: log.exists() and log.read_text().count("\n") >= 5, 10, "five log lines")
        assert log.read_text().splitlines() == [
            '"GET /fresh HTTP/1.1" 200 "thor; fwd=miss; fwd-status=200; stored"',
            '"GET /fresh HTTP/1.1" 200 "thor; hit"',
            '"GET /validated HTTP/1.1" 200 "thor; fwd=miss; fwd-status=200; stored"',
            '"GET /validated HTTP/1.1" 200 "thor; fwd=stale; fwd-status=304"',
            '"POST /fresh HTTP/1.1" 501 "-"',  # the cache takes no part: no Cache-Status
        ]
        assert gateway.stop() == 0


def test_concurrent_misses_share_one_fetch(start_gateway: Any) -> None:
    with origin() as up:
        gateway = start_gateway(
            "-b",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
            "--proxy",
            f"/={up.url}",
            "--cache",
        )
        with ThreadPoolExecutor(6) as pool:
            futures = [
                pool.submit(requests.get, gateway.url + "/slow", timeout=10) for _ in range(6)
            ]
            # All six are in the gateway (one at the origin, five waiting for it) before the
            # origin answers; without collapsing, six would reach the origin.
            poll(
                lambda: metric(gateway.metrics_port, "thor_requests_in_flight") == 6,
                what="six requests in flight",
            )
            up.release.set()
            bodies = [f.result().text for f in futures]
        assert bodies == ["/slow 1"] * 6
        assert up.counts["/slow"] == 1
        assert gateway.stop() == 0


def test_a_proxy_table_sets_the_cache_and_big_bodies_stream_through(
    start_gateway: Any, tmp_path: Path
) -> None:
    with origin() as up:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[[proxy]]\nprefix = "/"\nupstreams = ["{up.url}"]\n'
            f"cache = {{ max_object_size = {BIG // 2}, max_size = 10_000_000 }}\n"
        )
        gateway = start_gateway("-b", "127.0.0.1:0", "-c", str(config))
        for _ in range(2):
            big = requests.get(gateway.url + "/big", timeout=10)
            assert len(big.content) == BIG
            # its Content-Length says it is too big: not even buffered
            assert big.headers["Cache-Status"] == "thor; fwd=miss; fwd-status=200"
        for _ in range(2):
            requests.get(gateway.url + "/fresh", timeout=10)
        assert up.counts == {"/big": 2, "/fresh": 1}
        assert gateway.stop() == 0


def test_a_bad_cache_table_is_refused(start_gateway: Any, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[proxy]]\nprefix = "/"\nupstreams = ["http://127.0.0.1:9"]\ncache = { size = 1 }\n'
    )
    gateway = start_gateway("-b", "127.0.0.1:0", "-c", str(config), ready=False)
    assert gateway.wait() != 0
    assert "unknown cache settings: size" in gateway.log


def test_purge_on_the_metrics_listener(start_gateway: Any) -> None:
    with origin() as up:
        gateway = start_gateway(
            *("-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"),
            *("--proxy", f"/={up.url}", "--cache"),
        )
        for path in ("/fresh", "/p/1", "/p/2", "/fresh", "/p/1"):
            requests.get(gateway.url + path, timeout=10)
        assert up.counts == {"/fresh": 1, "/p/1": 1, "/p/2": 1}
        purge = f"http://127.0.0.1:{gateway.metrics_port}/cache/purge"
        site = gateway.url.replace("http", "HTTP")  # normalised as the cache keys it
        assert requests.post(purge, params={"prefix": site + "/p/"}, timeout=10).json() == {
            "purged": 2
        }
        assert requests.post(purge, params={"url": gateway.url + "/fresh"}, timeout=10).json() == {
            "purged": 1
        }
        assert requests.get(purge, params={"url": gateway.url}, timeout=10).status_code == 405
        assert requests.post(purge, params={"url": "/fresh"}, timeout=10).status_code == 400
        for path in ("/fresh", "/p/1", "/p/2"):
            requests.get(gateway.url + path, timeout=10)
        assert up.counts == {"/fresh": 2, "/p/1": 2, "/p/2": 2}
        assert gateway.stop() == 0


def test_the_disk_store_survives_a_restart(start_gateway: Any, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    with origin() as up:
        args = ("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache", "--cache-dir")
        for run in range(2):
            gateway = start_gateway(*args, str(folder))
            # the same Host both times: the second gateway listens on another port
            answer = requests.get(gateway.url + "/fresh", headers={"Host": "a.test"}, timeout=10)
            assert answer.text == "/fresh 1"
            status = "thor; hit" if run else "thor; fwd=miss; fwd-status=200; stored"
            assert answer.headers["Cache-Status"] == status
            assert gateway.stop() == 0
        assert up.counts == {"/fresh": 1}
        assert (folder / "_root").is_dir()  # one folder per route


def test_workers_share_the_disk_store(start_gateway: Any, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with origin() as up:
        gateway = start_gateway(
            *("-b", "127.0.0.1:0", "-w", "2", "--proxy", f"/={up.url}", "--cache"),
            *("--cache-dir", str(tmp_path / "cache"), "--access-logfile", str(log)),
            *("--access-logformat", "%(p)s %(C)s"),
        )
        # Each request on a new connection: the kernel spreads them over the two workers.
        # Only one of them fetched; the other must hit what the first stored.
        for count in range(1, 61):
            requests.get(gateway.url + "/fresh", headers={"Connection": "close"}, timeout=10)
            poll(lambda n=count: log.read_text().count("\n") >= n, 10, "a log line")  # type: ignore[misc]
            if len({line.split(" ")[0] for line in log.read_text().splitlines()}) == 2:
                break
        lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
        assert len({pid for pid, _ in lines}) == 2, "one worker took every connection"
        assert [status for _, status in lines].count("thor; hit") == len(lines) - 1
        assert up.counts == {"/fresh": 1}
        assert gateway.stop() == 0


def _entry_files(folder: Path, suffix: str = "") -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name != "sweep.lock" and p.name.endswith(suffix)
    ]


def test_a_large_body_is_stored_on_disk_as_it_arrives(start_gateway: Any, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    with origin() as up:
        gateway = start_gateway(
            *("-b", "127.0.0.1:0", "--proxy", f"/={up.url}", "--cache", "--cache-dir"),
            str(folder),
        )
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(requests.get, gateway.url + "/trickle", timeout=20)
            # Half the body came and the rest waits: the half is in the entry's temporary
            # file already (but for a write buffer of 64 KiB), not held until it is whole.
            half = len(LARGE) // 2 - 65536
            poll(
                lambda: any(p.stat().st_size >= half for p in _entry_files(folder, ".tmp")),
                10,
                "the first half in a temporary file",
            )
            assert [p for p in _entry_files(folder) if not p.name.endswith(".tmp")] == []
            up.release.set()
            assert answer.result().content == LARGE
        stored = _entry_files(folder)
        assert len(stored) == 1
        assert not stored[0].name.endswith(".tmp")
        assert stored[0].read_bytes()[: len(LARGE)] == LARGE  # the body first, then META
        hit = requests.get(gateway.url + "/trickle", timeout=20)
        assert hit.headers["Cache-Status"] == "thor; hit"
        assert hit.content == LARGE
        assert up.counts == {"/trickle": 1}
        assert gateway.stop() == 0


def test_a_large_body_on_disk_survives_a_restart_and_serves_workers(
    start_gateway: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "cache"
    log = tmp_path / "access.log"
    with origin() as up:
        args = (
            *("-b", "127.0.0.1:0", "-w", "2", "--proxy", f"/={up.url}", "--cache"),
            *("--cache-dir", str(folder), "--access-logfile", str(log)),
            *("--access-logformat", "%(p)s %(C)s"),
        )
        first = start_gateway(*args)
        # New connections until both workers answered (the kernel spreads them).
        for count in range(1, 41):
            got = requests.get(
                first.url + "/large", headers={"Host": "a.test", "Connection": "close"}, timeout=20
            )
            assert got.content == LARGE
            poll(lambda n=count: log.read_text().count("\n") >= n, 10, "a log line")  # type: ignore[misc]
            if len({line.split(" ")[0] for line in log.read_text().splitlines()}) == 2:
                break
        lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
        assert len({pid for pid, _ in lines}) == 2, "one worker took every connection"
        assert [status for _, status in lines].count("thor; hit") == len(lines) - 1
        assert first.stop() == 0
        second = start_gateway(*args)  # a restart: the store is the folder
        with requests.Session() as session:
            hit = session.get(second.url + "/large", headers={"Host": "a.test"}, timeout=20)
            assert hit.headers["Cache-Status"] == "thor; hit"
            assert hit.content == LARGE
            ranged = session.get(
                second.url + "/large",
                headers={"Host": "a.test", "Range": "bytes=1000000-1000099"},
                timeout=20,
            )
            assert ranged.status_code == 206
            assert ranged.content == LARGE[1_000_000:1_000_100]
            head = session.head(second.url + "/large", headers={"Host": "a.test"}, timeout=20)
            assert head.headers["Content-Length"] == str(len(LARGE))
            assert head.content == b""
        assert up.counts == {"/large": 1}
        assert second.stop() == 0
