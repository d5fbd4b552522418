"""The reverse proxy against real upstreams on loopback: forwarding, streaming, failures."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.gateway.proxy_support import (
    echo_server,
    raw_request,
    raw_upstream,
    read_all,
    read_head,
    refused_port,
    wait_for,
)
from thor_gateway.proxy import ProxyHandler

Live = Any


MountProxy = Callable[..., tuple[Live, ProxyHandler]]


@pytest.fixture
def mount_proxy(live_server: Callable[..., Live]) -> Iterator[MountProxy]:
    """``mount_proxy(upstreams, prefix=b"/api", **settings)`` -> (live server, handler).

    At teardown each handler is shut down on its loop (closing its pooled upstream
    connections) before the live server stops.
    """
    made: list[tuple[Live, ProxyHandler]] = []

    def make(
        upstreams: list[Any], prefix: bytes = b"/api", **settings: Any
    ) -> tuple[Live, ProxyHandler]:
        live = live_server()
        handler = ProxyHandler(upstreams, loop=live.loop, **settings)
        started = threading.Event()
        live.call(handler.startup, lambda exc: started.set())
        assert started.wait(5)
        live.mount(handler, prefix)
        made.append((live, handler))
        return live, handler

    yield make
    for live, handler in made:
        done = threading.Event()
        live.call(handler.shutdown, lambda exc, done=done: done.set())
        assert done.wait(5)


def get_json(url: str, **kwargs: Any) -> dict[str, Any]:
    response = requests.get(url, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def header_map(doc: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in doc["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def test_get_through_the_proxy_strips_the_prefix(mount_proxy: MountProxy) -> None:
    with echo_server() as up:
        live, _ = mount_proxy([up.url + "/base"])
        response = requests.get(
            live.url + "/api/users/7?x=1&y", timeout=10, headers={"Accept": "a/b"}
        )
        assert response.status_code == 200
        doc = response.json()
        assert doc["path"] == "/base/users/7?x=1&y"
        seen = header_map(doc)
        assert seen["host"] == [f"127.0.0.1:{up.port}"]
        assert seen["via"] == ["1.1 thor"]
        assert seen["x-forwarded-for"] == ["127.0.0.1"]
        assert seen["x-forwarded-proto"] == ["http"]
        assert seen["x-forwarded-host"] == [f"127.0.0.1:{live.port}"]
        assert seen["forwarded"] == [f'for=127.0.0.1;proto=http;host="127.0.0.1:{live.port}"']
        assert seen["accept"] == ["a/b"]
        # the response: upstream's hop-by-hop fields gone, Via added, upstream's Server kept
        assert response.headers["Via"] == "1.1 thor"
        assert "X-Upstream-Hop" not in response.headers
        assert response.headers["Server"].startswith("echo")


def test_keep_prefix_and_preserve_host(mount_proxy: MountProxy) -> None:
    with echo_server() as up:
        live, _ = mount_proxy([up.url], strip_prefix=False, preserve_host=True)
        doc = get_json(live.url + "/api/x", headers={"Host": "front.example"})
        assert doc["path"] == "/api/x"
        assert header_map(doc)["host"] == ["front.example"]


def test_exactly_what_reaches_the_upstream(mount_proxy: MountProxy) -> None:
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    with raw_upstream(script) as up:
        live, _ = mount_proxy([up.url], prefix=b"")
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(
                b"GET /p?q HTTP/1.1\r\nHost: front\r\nConnection: X-Private, keep-alive\r\n"
                b"X-Private: 1\r\nKeep-Alive: 5\r\nTE: gzip\r\nUpgrade: h2c\r\n"
                b"Proxy-Connection: x\r\nX-Forwarded-For: 10.9.8.7\r\nUser-Agent: t\r\n\r\n"
            )
            answer = read_head(sock)  # a 204 is all head; the connection stays open
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
        head = up.heads[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"GET /p?q HTTP/1.1"
        assert head[1] == b"Host: 127.0.0.1:%d" % up.port
        fields = head[1:]
        names = [f.split(b":")[0].lower() for f in fields]
        for hop in (
            b"x-private",
            b"keep-alive",
            b"te",
            b"upgrade",
            b"proxy-connection",
            b"transfer-encoding",
        ):
            assert hop not in names
        assert b"Via: 1.1 thor" in fields
        assert b"X-Forwarded-For: 10.9.8.7, 127.0.0.1" in fields
        assert b"Forwarded: for=127.0.0.1;proto=http;host=front" in fields
        assert b"User-Agent: t" in fields


def test_post_bodies_with_length_and_chunked(mount_proxy: MountProxy) -> None:
    with echo_server() as up:
        live, _ = mount_proxy([up.url])
        response = requests.post(live.url + "/api/x", data=b"a" * 100_000, timeout=10)
        assert response.json()["body"] == 100_000

    def script(sock: socket.socket, head: bytes) -> None:
        data = head
        sock.settimeout(5)
        while not data.endswith(b"0\r\nX-T: 1\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        received.append(data)  # before the answer: the test reads it once answered
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    received: list[bytes] = []
    with raw_upstream(script) as up:
        live, _ = mount_proxy([up.url])
        answer = raw_request(
            live.port,
            b"PATCH /api/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
        )
        assert answer.endswith(b"\r\n\r\nok")
        head, _, body = received[0].partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        # re-chunked by the client, trailers passed on
        assert body.replace(b"\r\n", b"|") in (b"3|abc|2|de|0|X-T: 1||", b"5|abcde|0|X-T: 1||")


def test_refused_upstream_is_502(mount_proxy: MountProxy) -> None:
    live, _ = mount_proxy([f"http://127.0.0.1:{refused_port()}"], retries=0)
    response = requests.get(live.url + "/api/x", timeout=10)
    assert response.status_code == 502


def test_silent_upstream_is_504(mount_proxy: MountProxy) -> None:
    def silent(sock: socket.socket, head: bytes) -> None:
        read_all(sock, timeout=3)

    with raw_upstream(silent) as up:
        live, _ = mount_proxy([up.url], upstream_timeout=0.3, retries=0)
        started = time.monotonic()
        response = requests.get(live.url + "/api/x", timeout=10)
        assert response.status_code == 504
        assert 0.25 < time.monotonic() - started < 3


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        # A valid head with a broken body in the same segment: nothing was relayed yet.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    ],
)
def test_broken_framing_is_502_and_never_relayed(mount_proxy: MountProxy, answer: bytes) -> None:
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(answer)
        read_all(sock, timeout=0.2)

    with raw_upstream(script) as up:
        live, _ = mount_proxy([up.url], retries=0)
        response = raw_request(
            live.port, b"GET /api/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert response.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert b"hello" not in response


@pytest.mark.parametrize(
    ("chunked", "stall"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_upstream_failing_mid_body_aborts_the_client(
    mount_proxy: MountProxy, chunked: bool, stall: bool
) -> None:
    """Reset (or silent past upstream_timeout) after part of the body: the client must see
    an incomplete response, never a complete-looking short one."""

    def script(sock: socket.socket, head: bytes) -> None:
        if chunked:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n"
                + b"x" * 1024
                + b"\r\n"
            )
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1024)
        if stall:
            read_all(sock, timeout=3)  # silent until the proxy gives up and closes
            return
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with raw_upstream(script) as up:
        live, _ = mount_proxy([up.url], upstream_timeout=0.3)
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
        conn.request("GET", "/api/x")
        response = conn.getresponse()
        assert response.status == 200
        started = time.monotonic()
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
        assert time.monotonic() - started < 3
        conn.close()


def test_client_leaving_cancels_the_upstream_request(mount_proxy: MountProxy) -> None:
    closed = threading.Event()

    def slow(sock: socket.socket, head: bytes) -> None:
        sock.settimeout(5)
        if sock.recv(1) == b"":
            closed.set()

    with raw_upstream(slow) as up:
        live, _ = mount_proxy([up.url])
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        sock.sendall(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: len(up.heads) == 1)
        sock.close()
        assert closed.wait(5), "the upstream connection was not closed"


def test_max_forwards_zero_is_answered_locally(mount_proxy: MountProxy) -> None:
    with echo_server() as up:
        live, _ = mount_proxy([up.url])
        trace = raw_request(
            live.port,
            b"TRACE /api/t HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nCookie: s\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert trace.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"message/http" in trace
        assert trace.endswith(
            b"TRACE /api/t HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n"
        )
        response = requests.options(live.url + "/api/o", headers={"Max-Forwards": "0"}, timeout=10)
        assert "OPTIONS" in response.headers["Allow"]
        response = requests.options(live.url + "/api/o", headers={"Max-Forwards": "3"}, timeout=10)
        assert header_map(response.json())["max-forwards"] == ["2"]


def test_early_hints_and_trailers_are_relayed(mount_proxy: MountProxy) -> None:
    def script(sock: socket.socket, head: bytes) -> None:
        sock.sendall(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"
        )
        read_all(sock, timeout=0.2)

    with raw_upstream(script) as up:
        live, _ = mount_proxy([up.url])
        answer = raw_request(
            live.port, b"GET /api/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=3
        )
        assert answer.startswith(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
        )
        assert answer.endswith(b"5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n")
        # RFC 9110 §6.6.2: Trailer is end-to-end, so the field announcing X-Sum goes on too.
        final_head = answer.split(b"\r\n\r\n")[1]
        assert b"\r\nTrailer: X-Sum\r\n" in final_head + b"\r\n"


def test_retry_goes_to_another_upstream(mount_proxy: MountProxy) -> None:
    with echo_server("good") as up:
        bad = f"http://127.0.0.1:{refused_port()}"
        live, _handler = mount_proxy([bad, up.url], retries=1, max_fails=0)
        for _ in range(4):
            assert get_json(live.url + "/api/x")["server"] == "good"
        # a refused connection never saw the request: even a POST (with its body) goes on
        for _ in range(4):
            response = requests.post(live.url + "/api/x", data=b"a" * 5000, timeout=10)
            assert response.status_code == 200
            assert response.json()["server"] == "good"
            assert response.json()["body"] == 5000


def test_a_request_the_upstream_may_have_seen_is_retried_only_if_idempotent(
    mount_proxy: MountProxy,
) -> None:
    def hang_up(sock: socket.socket, head: bytes) -> None:
        pass  # read the request, close without an answer

    with raw_upstream(hang_up) as bad, echo_server("good") as good:
        live, _ = mount_proxy([bad.url, good.url], retries=1, max_fails=0)
        for _ in range(2):
            assert get_json(live.url + "/api/x")["server"] == "good"
        statuses = [
            requests.post(live.url + "/api/x", data=b"1", timeout=10).status_code for _ in range(4)
        ]
        assert sorted(statuses) == [200, 200, 502, 502]  # the ones that reached bad: not replayed


def test_round_robin_over_two_upstreams_and_passive_ejection(mount_proxy: MountProxy) -> None:
    with echo_server("a") as a, echo_server("b") as b:
        live, _ = mount_proxy([a.url, b.url])
        seen = [get_json(live.url + "/api/")["server"] for _ in range(6)]
        assert sorted(seen) == ["a", "a", "a", "b", "b", "b"]
    with echo_server("good") as good:
        dead = refused_port()
        live, _handler = mount_proxy(
            [f"http://127.0.0.1:{dead}", good.url], retries=0, max_fails=2, eject_time=60
        )
        results = [requests.get(live.url + "/api/", timeout=10).status_code for _ in range(10)]
        assert results.count(502) == 2  # ejected after two failures
        assert results[-6:] == [200] * 6


def test_active_health_checks_take_a_member_out_and_back(mount_proxy: MountProxy) -> None:
    with echo_server("a") as a, echo_server("b") as b:
        live, handler = mount_proxy(
            [a.url, b.url],
            health_check_path="/health",
            health_check_interval=0.05,
            health_check_rise=1,
            health_check_fall=1,
        )
        a.set_health(500)
        member_a = handler.upstreams.members[0]
        assert wait_for(lambda: not member_a.health.up)
        assert {get_json(live.url + "/api/")["server"] for _ in range(4)} == {"b"}
        a.set_health(200)
        assert wait_for(lambda: member_a.health.up)
        assert {get_json(live.url + "/api/")["server"] for _ in range(4)} == {"a", "b"}


def test_connection_limit_gives_503(mount_proxy: MountProxy) -> None:
    release = threading.Event()

    def held(sock: socket.socket, head: bytes) -> None:
        release.wait(5)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_upstream(held) as up:
        live, _ = mount_proxy([up.url], max_connections=1)
        first = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        first.sendall(b"GET /api/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: len(up.heads) == 1)
        second = requests.get(live.url + "/api/2", timeout=10)
        assert second.status_code == 503
        assert second.headers["Retry-After"] == "1"
        release.set()
        answer = read_head(first)
        while not answer.endswith(b"\r\n\r\nok") and len(answer) < 1000:
            more = first.recv(1000)
            assert more, answer
            answer += more
        first.close()


def test_gzip_through_the_proxy(mount_proxy: MountProxy) -> None:
    import gzip

    with echo_server() as up:
        live, _ = mount_proxy([up.url], gzip=True)
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
        conn.request("GET", "/api/big/100000", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        body = response.read()
        assert response.getheader("Content-Encoding") == "gzip"
        assert response.getheader("Vary") == "Accept-Encoding"
        assert gzip.decompress(body) == (b"0123456789abcdef" * 6250)
        conn.close()


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(TypeError, match="colour"):
        ProxyHandler(["http://127.0.0.1:1"], colour="red")


def test_expect_100_continue_through_the_proxy(mount_proxy: MountProxy) -> None:
    with echo_server() as up:
        live, _ = mount_proxy([up.url])
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(
                b"POST /api/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            interim = sock.recv(65536)
            assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
            sock.sendall(b"hello")
            answer = interim + read_all(sock)
        head, _, body = answer[len(b"HTTP/1.1 100 Continue\r\n\r\n") :].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        doc = json.loads(body)
        assert doc["body"] == 5
        assert doc["body_text"] == "hello"
        assert b"HTTP/1.1 100" not in body  # the upstream's own 100 is not relayed twice


def test_upstream_5xx_counts_for_ejection_and_probation_restores(mount_proxy: MountProxy) -> None:
    with echo_server("a") as a, echo_server("b") as b:
        live, handler = mount_proxy([a.url, b.url], max_fails=2, eject_time=0.2)
        member_a = handler.upstreams.members[0]
        a.set_health(503)
        # a's 503s are relayed as they are, and eject it after two
        statuses = [requests.get(live.url + "/api/flaky", timeout=10).status_code for _ in range(4)]
        assert sorted(statuses) == [200, 200, 503, 503]
        assert member_a.ejection.state.value == "ejected"
        assert {get_json(live.url + "/api/")["server"] for _ in range(3)} == {"b"}
        # after the ejection time it is on probation; one success restores it
        a.set_health(200)
        assert wait_for(lambda: live.call(lambda: member_a.ejection.admits(handler.loop.time())))
        assert {get_json(live.url + "/api/")["server"] for _ in range(4)} == {"a", "b"}
        assert member_a.ejection.state.value == "in service"
        assert member_a.active == 0
        assert handler.upstreams.members[1].active == 0


def test_forwarding_names_the_peer_not_the_client_a_front_proxy_named(
    live_server: Callable[..., Live],
) -> None:
    """Behind a trusted front proxy the router reports the original client; this hop's
    Forwarded/X-Forwarded-For element is still the peer that connected (RFC 7239 §5.2)."""
    with echo_server() as up:
        live = live_server()
        proxy = ProxyHandler([up.url], loop=live.loop)

        class Trusting:  # what the router does for a trusted peer
            def handle(self, exchange: Any, request: Any) -> None:
                request.client = ("203.0.113.9", 1)
                request.scheme = "https"
                proxy.handle(exchange, request)

        live.mount(Trusting())
        doc = get_json(
            live.url + "/x",
            headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9;proto=https"},
        )
        seen = header_map(doc)
        assert seen["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
        assert seen["forwarded"] == [
            "for=203.0.113.9;proto=https",
            f'for=127.0.0.1;proto=http;host="127.0.0.1:{live.port}"',
        ]
        done = threading.Event()
        live.call(proxy.shutdown, lambda exc: done.set())
        assert done.wait(5)


def test_https_upstream_verified_with_a_private_ca(
    mount_proxy: MountProxy, tmp_path: Any, live_server: Callable[..., Live]
) -> None:
    import trustme

    from thor.tls import server_context

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    upstream = live_server(tls_context=server_context(str(tmp_path / "server.pem")))

    class Hello:
        def handle(self, exchange: Any, request: Any) -> None:
            def done(trailers: Any) -> None:
                body = f"tls {exchange.scheme} {request.headers}".encode()
                exchange.response_start(200, b"OK", [(b"Content-Length", b"%d" % len(body))])
                exchange.response_body(body)
                exchange.response_done([])

            exchange.on("request_done", done)

    upstream.mount(Hello())
    url = f"https://localhost:{upstream.port}"
    live, _ = mount_proxy([url], tls_ca_file=str(tmp_path / "ca.pem"))
    response = requests.get(live.url + "/api/x", timeout=10)
    assert response.status_code == 200
    assert response.text.startswith("tls https")
    assert f"(b'Host', b'localhost:{upstream.port}')" in response.text
    # without the CA, the certificate is not trusted: 502
    live, _ = mount_proxy([url], retries=0)
    assert requests.get(live.url + "/api/x", timeout=10).status_code == 502


def test_python_api_picks_per_request_and_serves_native_apps(
    live_server: Callable[..., Live],
) -> None:
    from thor_gateway.hosting.native import NativeHandler
    from thor_gateway.proxy import request_for

    with echo_server("stable") as stable, echo_server("canary") as canary:
        live = live_server()

        def pick(request: Any, members: Any) -> Any:
            wanted = "canary" if b"beta=1" in request.query else "stable"
            port = canary.port if wanted == "canary" else stable.port
            return next(m for m in members if m.target.port == port)

        proxy = ProxyHandler([stable.url, canary.url], loop=live.loop, pick=pick)

        def app(exchange: Any) -> None:  # a native Thor app handing requests to the proxy
            def request_start(method: bytes, uri: bytes, headers: Any) -> None:
                proxy.handle(exchange, request_for(exchange, method, uri, headers))

            exchange.on("request_start", request_start)

        live.mount(NativeHandler(app))
        assert {get_json(live.url + "/p?beta=1")["server"] for _ in range(3)} == {"canary"}
        assert {get_json(live.url + "/p")["server"] for _ in range(3)} == {"stable"}
        done = threading.Event()
        live.call(proxy.shutdown, lambda exc: done.set())
        assert done.wait(5)
