"""``--proxy-protocol`` through the real command line, over sockets on 127.0.0.1: the
header's client is what WSGI, ASGI, the access log and the proxy's X-Forwarded-For see;
untrusted peers, missing headers and silent clients are closed and logged;
``--check-config`` refuses a trust list no peer could pass."""

from __future__ import annotations

import http.server
import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.gateway_helpers import Gateway, poll, raw_exchange, run_cli

APPS = "tests.gateway.serving.proxy_protocol_apps"
V1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 40001 80\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src: str, sport: int) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton("192.0.2.1") + struct.pack("!HH", sport, 80)
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def body_json(response: bytes) -> object:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), response
    if b"chunked" in head.lower():  # one chunk, then the last
        body = body.split(b"\r\n")[1]
    return json.loads(body)


def start(*args: str, env: dict[str, str] | None = None) -> Gateway:
    gateway = Gateway(*args, env=env)
    try:
        gateway.wait_ready()
    except BaseException:
        gateway.close()
        raise
    return gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    log = tmp_path / "access.log"
    running = start(
        "-b",
        "127.0.0.1:0",
        "--mount",
        f"/wsgi={APPS}:wsgi",
        "--mount",
        f"/asgi={APPS}:asgi",
        "--access-logfile",
        str(log),
        "--proxy-protocol",
        "--header-timeout",
        "0.5",
    )
    running.access_log = log  # type: ignore[attr-defined]
    yield running
    running.close()


def test_wsgi_asgi_and_the_access_log_see_the_headers_client(gateway: Gateway) -> None:
    assert body_json(raw_exchange(gateway.port, V1 + get("/wsgi/"))) == ["203.0.113.7", "40001"]
    assert body_json(raw_exchange(gateway.port, v2("198.51.100.9", 7) + get("/asgi/"))) == [
        "198.51.100.9",
        7,
    ]
    log: Path = gateway.access_log  # type: ignore[attr-defined]
    poll(lambda: log.exists() and log.read_text().count("\n") >= 2, what="two access lines")
    lines = log.read_text().splitlines()
    assert lines[0].startswith("203.0.113.7 ")
    assert lines[1].startswith("198.51.100.9 ")


def test_a_header_split_across_sends(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        for i in range(0, len(V1), 7):
            sock.sendall(V1[i : i + 7])
        sock.sendall(get("/wsgi/"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    assert body_json(b"".join(chunks)) == ["203.0.113.7", "40001"]


def test_a_missing_header_and_a_silent_client_are_closed(gateway: Gateway) -> None:
    assert raw_exchange(gateway.port, get("/wsgi/")) == b""
    gateway.wait_for_line(r"PROXY protocol: connection from .*Not a PROXY protocol header")
    assert raw_exchange(gateway.port, b"", timeout=5) == b""  # closed at --header-timeout
    gateway.wait_for_line(r"no complete PROXY header in time")


def test_an_untrusted_peer_is_refused() -> None:
    gateway = start(
        f"{APPS}:wsgi",
        "-b",
        "127.0.0.1:0",
        "--proxy-protocol",
        "--forwarded-allow-ips",
        "10.0.0.0/8",
    )
    try:
        assert raw_exchange(gateway.port, V1 + get("/")) == b""
        gateway.wait_for_line(r"is not a trusted proxy; connection closed")
    finally:
        gateway.close()


def test_without_proxy_headers_the_header_is_still_read() -> None:
    # --no-proxy-headers: nobody's X-Forwarded-For is believed, the PROXY header still is.
    gateway = start(
        f"{APPS}:wsgi", "-b", "127.0.0.1:0", "--no-proxy-headers", env={"THOR_PROXY_PROTOCOL": "1"}
    )
    try:
        request = get("/").replace(b"Host: x", b"Host: x\r\nX-Forwarded-For: 1.1.1.1")
        assert body_json(raw_exchange(gateway.port, V1 + request)) == ["203.0.113.7", "40001"]
    finally:
        gateway.close()


def test_with_two_workers() -> None:
    gateway = start(f"{APPS}:wsgi", "-b", "127.0.0.1:0", "-w", "2", "--proxy-protocol")
    try:
        for port in range(5):
            answer = raw_exchange(gateway.port, v2("192.0.2.50", 1000 + port) + get("/"))
            assert body_json(answer) == ["192.0.2.50", str(1000 + port)]
    finally:
        gateway.close()


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(self.headers.get("X-Forwarded-For")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_proxy_forwards_the_headers_client() -> None:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    port = upstream.server_address[1]
    gateway = start(
        "--proxy", f"/=http://127.0.0.1:{port}", "-b", "127.0.0.1:0", "--proxy-protocol"
    )
    try:
        assert body_json(raw_exchange(gateway.port, V1 + get("/"))) == "203.0.113.7"
    finally:
        gateway.close()
        upstream.shutdown()
        upstream.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--forwarded-allow-ips", "unix"], "admits no peer of 127.0.0.1:8000"),
        (["-b", "unix:/tmp/thor-pp.sock", "--forwarded-allow-ips", "10.0.0.1"], "admits no peer"),
        (["--header-timeout", "0"], "needs a --header-timeout above 0"),
    ],
)
def test_check_config_refuses_what_no_peer_could_pass(args: list[str], problem: str) -> None:
    checked = run_cli(f"{APPS}:wsgi", "--proxy-protocol", *args, "--check-config")
    assert checked.returncode == 2, checked.stderr
    assert problem in checked.stderr
    assert "proxy_protocol" in checked.stderr


def test_check_config_accepts_a_trusted_balancer() -> None:
    checked = run_cli(
        f"{APPS}:wsgi", "--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8", "--check-config"
    )
    assert checked.returncode == 0, checked.stderr
