"""thor-gateway in a subprocess, real clients: mounts, SCRIPT_NAME, errors, TLS, UNIX sockets."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import Gateway, raw_exchange, statuses

APPS = "tests.gateway.gateway_apps"
MOUNTS = [
    "--mount",
    f"/api={APPS}:named('api')",
    "--mount",
    f"/api/v2={APPS}:named('v2')",
    "--mount",
    "/flask=apps.flask_app:app",
    "--mount",
    f"/native={APPS}:native",
    "--mount",
    f"/caf%C3%A9={APPS}:named('cafe')",
]


@pytest.fixture(scope="module")
def mounted() -> Iterator[Gateway]:
    """One gateway for the tests that only read from it."""
    gateway = Gateway(f"{APPS}:named('root')", "-b", "127.0.0.1:0", *MOUNTS)
    try:
        yield gateway.wait_ready()
    finally:
        gateway.stop()


def app_calls(gateway: Gateway) -> int:
    """How often the app ran so far; each call of this adds one."""
    return int(requests.get(gateway.url + "/count", timeout=10).json()["calls"])


@pytest.mark.parametrize(
    ("path", "app", "script_name", "path_info"),
    [
        ("/", "root", "", "/"),
        ("/api", "api", "/api", ""),
        ("/api/", "api", "/api", "/"),
        ("/api/x/y", "api", "/api", "/x/y"),
        ("/apix", "root", "", "/apix"),  # a prefix matches at a segment boundary only
        ("/api/v2", "v2", "/api/v2", ""),  # the longest prefix wins
        ("/api/v2/items", "v2", "/api/v2", "/items"),
        ("/api/v20", "api", "/api", "/v20"),
        ("/api/a%20b", "api", "/api", "/a b"),  # PATH_INFO is decoded
        ("/%61pi/q", "api", "/api", "/q"),  # matching uses the decoded path
        ("/café/menu", "cafe", "/caf\xc3\xa9", "/menu"),  # PEP 3333: latin-1 str of the bytes
    ],
)
def test_routing(mounted: Any, path: str, app: str, script_name: str, path_info: str) -> None:
    response = requests.get(mounted.url + path, timeout=10)
    assert response.status_code == 200
    seen = response.json()
    assert (seen["app"], seen["script_name"], seen["path_info"]) == (app, script_name, path_info)


def test_flask_sees_its_prefix(mounted: Any) -> None:
    seen = requests.get(mounted.url + "/flask/", timeout=10).json()
    assert seen["script_name"] == "/flask"
    assert seen["self"] == "/flask/"
    echoed = requests.post(mounted.url + "/flask/echo", data=b"x" * 100_000, timeout=10)
    assert echoed.content == b"x" * 100_000


def test_native_handler_mounted(mounted: Any) -> None:
    response = requests.get(mounted.url + "/native/hi?x=1", timeout=10)
    assert response.text == "native /native/hi?x=1"


def test_query_and_body_reach_the_app(mounted: Any) -> None:
    seen = requests.post(mounted.url + "/api/p?a=1&b=2", data=b"abc", timeout=10).json()
    assert (seen["query"], seen["body_length"], seen["method"]) == ("a=1&b=2", 3, "POST")


def test_keep_alive_across_mounts(mounted: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", mounted.port, timeout=10)
    seen = []
    for path in ("/api/1", "/native/2", "/flask/", "/api/v2/3", "/healthz"):
        conn.request("GET", path)
        response = conn.getresponse()
        seen.append((response.status, response.getheader("Connection")))
        response.read()
    conn.close()
    assert seen == [(200, None)] * 5


def test_no_root_mount_gives_404(start_gateway: Any) -> None:
    gateway = start_gateway("-b", "127.0.0.1:0", "--mount", f"/api={APPS}:info")
    assert requests.get(gateway.url + "/api/x", timeout=10).status_code == 200
    for path in ("/", "/apix", "/other/api"):
        response = requests.get(gateway.url + path, timeout=10)
        assert response.status_code == 404
        assert response.text == "404 Not Found\n"


def test_connect_is_refused_and_app_never_called(mounted: Any) -> None:
    before = app_calls(mounted)
    response = raw_exchange(
        mounted.port,
        b"CONNECT victim.example:443 HTTP/1.1\r\nHost: victim.example:443\r\n\r\n",
        timeout=3,
    )
    assert statuses(response) == [405]
    assert app_calls(mounted) == before + 1


def test_root_path_prefixes_script_name(start_gateway: Any) -> None:
    gateway = start_gateway(
        "-b", "127.0.0.1:0", "--root-path", "/outer", "--mount", f"/api={APPS}:info"
    )
    seen = requests.get(gateway.url + "/api/x", timeout=10).json()
    assert (seen["script_name"], seen["path_info"]) == ("/outer/api", "/x")


def test_health_and_readiness(mounted: Any) -> None:
    before = app_calls(mounted)
    health = requests.get(mounted.url + "/healthz", timeout=10)
    ready = requests.get(mounted.url + "/readyz", timeout=10)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert app_calls(mounted) == before + 1


def test_config_file_serves_the_examples(start_gateway: Any) -> None:
    gateway = start_gateway("-c", "apps/gateway.toml", "-b", "127.0.0.1:0", "--interface", "auto")
    assert requests.get(gateway.url + "/", timeout=10).text == "Hello, world!"
    assert requests.get(gateway.url + "/wsgi/", timeout=10).text == "Hello, world!"
    assert requests.get(gateway.url + "/asgi/", timeout=10).text == "Hello, world!"
    assert requests.get(gateway.url + "/flask/", timeout=10).json()["script_name"] == "/flask"


def test_hello_thor_standalone_answers_13_bytes(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.gateway.gateway_helpers import ROOT, poll

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "apps/hello_thor.py", "127.0.0.1", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=2).content == (
                    b"Hello, world!"
                )
            except requests.ConnectionError:
                return False

        poll(answers, 15, "hello_thor.py to answer")
    finally:
        proc.terminate()
        proc.wait(10)


def test_factory_flag(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:create_app", "--factory", "-b", "127.0.0.1:0")
    assert requests.get(gateway.url + "/", timeout=10).json()["app"] == "factory"


def test_unix_socket(start_gateway: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "gw.sock")
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "--uds", path)
    gateway.wait_for_line(r"Listening at unix:")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert statuses(data) == [200]
    seen = json.loads(data.partition(b"\r\n\r\n")[2])
    assert seen["path_info"] == "/u"


def test_ipv6_bind(start_gateway: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    gateway = start_gateway(f"{APPS}:info", "-b", "[::1]:0")
    response = requests.get(f"http://[::1]:{gateway.port}/v6", timeout=10)
    assert response.json()["remote_addr"] == "::1"


def test_tls(start_gateway: Any, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    certfile, keyfile, cafile = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    gateway = start_gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--ssl-certfile",
        str(certfile),
        "--ssl-keyfile",
        str(keyfile),
    )
    gateway.wait_for_line(r"Listening at https://")
    response = requests.get(f"https://127.0.0.1:{gateway.port}/s", verify=str(cafile), timeout=10)
    assert response.json()["scheme"] == "https"
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost"),
    ):
        pass  # an unknown CA is refused by the client: the server really speaks TLS
    assert context is not None


def test_stop_exits_zero(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0")
    assert requests.get(gateway.url + "/", timeout=10).status_code == 200
    assert gateway.stop() == 0
    assert "stopped" in gateway.log


def test_asgi_app_with_lifespan_mounted(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "--mount", "/asgi=apps.hello_asgi:app"
    )
    with requests.Session() as session:
        for path in ("/asgi", "/asgi/", "/asgi/deep/path"):
            assert session.get(gateway.url + path, timeout=10).text == "Hello, world!"
        assert session.get(gateway.url + "/asgix", timeout=10).json()["app"] == "info"
    assert gateway.stop() == 0


def test_startup_log_names_every_route(mounted: Gateway) -> None:
    log = mounted.log
    assert f"Serving /api -> {APPS}:named('api')" in log
    assert f"Serving / -> {APPS}:named('root')" in log
    assert log.index("Serving /api ->") < log.index("Listening at")


def test_proxy_route(start_gateway: Any) -> None:
    backend = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0")
    front = start_gateway(
        f"{APPS}:named('front')",
        "-b",
        "127.0.0.1:0",
        "--proxy",
        f"/up=http://127.0.0.1:{backend.port}",
    )
    proxied = requests.get(front.url + "/up/item?x=1", timeout=10)
    assert proxied.status_code == 200
    assert proxied.json()["app"] == "info"
    assert proxied.json()["query"] == "x=1"
    assert requests.get(front.url + "/upx", timeout=10).json()["app"] == "front"


def test_limit_and_timeout_flags_reach_the_server(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--limit-request-line",
        "200",
        "--limit-request-fields",
        "5",
        "--max-body-size",
        "1k",
        "--header-timeout",
        "1",
        "--keep-alive",
        "1",
    )
    host = b"Host: a\r\n"
    assert statuses(
        raw_exchange(gateway.port, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n" + host)
    ) == [414]
    many = b"GET / HTTP/1.1\r\n" + host + b"X: y\r\n" * 6 + b"\r\n"
    assert statuses(raw_exchange(gateway.port, many)) == [431]
    big = b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 1025\r\n\r\n"
    assert statuses(raw_exchange(gateway.port, big)) == [413]
    ok = b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 1024\r\nConnection: close\r\n\r\n"
    assert statuses(raw_exchange(gateway.port, ok + b"x" * 1024)) == [200]
    # A header that never ends is cut after --header-timeout; an idle keep-alive
    # connection after --keep-alive.
    for data in (b"GET / HTTP/1.1\r\n" + host, b"GET / HTTP/1.1\r\n" + host + b"\r\n"):
        started = time.monotonic()
        raw_exchange(gateway.port, data, timeout=5)
        assert 0.5 < time.monotonic() - started < 4


@pytest.mark.parametrize(
    ("flags", "threshold", "frozen"), [((), 10000, True), (("--gc-threshold", "0"), 700, False)]
)
def test_gc_threshold(
    start_gateway: Any, flags: tuple[str, ...], threshold: int, frozen: bool
) -> None:
    # Python's own first threshold is 700; the serving process raises it and freezes what
    # startup built, unless told to leave the collector alone.
    gateway = start_gateway(f"{APPS}:gc_state", "-b", "127.0.0.1:0", *flags)
    state = requests.get(gateway.url, timeout=10).json()
    assert state["threshold"][0] == threshold
    assert (state["frozen"] > 1000) is frozen
    assert gateway.stop() == 0


@pytest.mark.parametrize("spelling", ["--fd", "-b"])
def test_inherited_socket(spelling: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    value = str(fd) if spelling == "--fd" else f"fd://{fd}"
    gateway = Gateway(f"{APPS}:info", spelling, value, pass_fds=(fd,))
    try:
        gateway.wait_ready()
        assert gateway.port == port
        assert requests.get(f"http://127.0.0.1:{port}/fd", timeout=10).json()["path_info"] == "/fd"
        assert gateway.stop() == 0
    finally:
        gateway.close()
        listener.close()


def test_systemd_socket_activation() -> None:
    import subprocess
    import sys

    from tests.gateway.gateway_helpers import ROOT

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    # As systemd does: the socket on fd 3, LISTEN_PID naming the process that
    # execs (exec keeps the pid).
    launcher = (
        "import os, sys\n"
        f"os.dup2({listener.fileno()}, 3, inheritable=True)\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
        f"os.execv(sys.executable, [sys.executable, '-m', 'thor_gateway', '{APPS}:info'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher],
        cwd=ROOT,
        pass_fds=(listener.fileno(),),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        from tests.gateway.gateway_helpers import poll

        def answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/sd", timeout=5).status_code == 200
            except requests.RequestException:  # queued until the gateway starts
                return False

        try:
            poll(answers, 15, "the gateway on the systemd socket")
        except AssertionError:
            proc.terminate()
            assert proc.stderr is not None
            raise AssertionError(proc.stderr.read()) from None
        proc.terminate()
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        assert f"Listening at http://127.0.0.1:{port}" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
        listener.close()
