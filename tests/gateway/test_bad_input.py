"""Appendix B (servers.md) over raw sockets against a running thor-gateway.

Every rejection must carry the expected status and ``Connection: close``, and
nothing after it may be served.  A bad header is refused before any app runs
(the app counts its calls and is asked afterwards).  A bad chunked *body*
comes after a valid header (the cases marked ``BODY``): with buffered bodies (the
default) the app is never called for it; with streamed ones (``--wsgi-input
streamed``) the app has started by then and must get an error from ``wsgi.input``,
never a complete body.  Either way the client gets the 400.  Every case runs in both
modes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.gateway.gateway_helpers import Gateway, poll, raw_exchange, statuses

APPS = "tests.gateway.gateway_apps"
P = b"POST / HTTP/1.1\r\nHost: a\r\n"
G = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"

# (id, bytes sent, the acceptable first statuses)
REJECTED: list[tuple[str, bytes, set[int]]] = [
    ("B1", P + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + G, {400}),
    ("B2", P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("B3", P + b"Transfer-Encoding: blegh\r\n\r\n", {501, 400}),
    ("B4", P + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", {501}),
    ("B5", P + b"Transfer-Encoding: chunked, gzip\r\n\r\n", {400}),
    ("B6", P + b"Transfer-Encoding: ,chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + G, {400}),
    ("B7a", P + b"Transfer-Encoding: \xa0chunked\xa0\r\n\r\n0\r\n\r\n", {400}),
    ("B7b", P + b"Transfer-Encoding: \x0bchunked\x0b\r\n\r\n0\r\n\r\n", {400}),
    ("B8", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("B9", P + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc", {400}),
    ("B10", P + b"Transfer-Encoding: chunked;ext=val\r\n\r\n0\r\n\r\n", {400, 501}),
    ("B11", P + b"Content-Length: 1\r\nContent-Length: 0\r\n\r\nZ", {400}),
    ("B12a", P + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nZ", {400}),
    ("B12b", P + b"Content-Length: 1, 1\r\n\r\nZ", {400}),
    *[
        (f"B13-{value!r}", P + b"Content-Length: " + value + b"\r\n\r\nZ", {400})
        for value in (b"+1", b"-48", b"0x1", b"1_0", b"1Z", b"")
    ],
    ("B14", P + b"Content-Length: 99999999999999999999999999\r\n\r\n", {413}),
    *[
        (
            f"B15-{size!r}",
            P + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\nZ\r\n0\r\n\r\n",
            {400},
        )
        for size in (b"0x1", b"0_2e", b"+1", b"")
    ],
    ("B15-huge", P + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", {400, 413}),
    ("B16", P + b"Transfer-Encoding: chunked\r\n\r\n1\nZ\r\n0\r\n\r\n", {400}),
    ("B17", P + b"Transfer-Encoding: chunked\r\n\r\n1\r\nZXX0\r\n\r\n", {400}),
    ("B18a", P + b"Transfer-Encoding: chunked\r\n\r\n1;\rx\r\nZ\r\n0\r\n\r\n", {400}),
    ("B18b", P + b"Transfer-Encoding: chunked\r\n\r\n1;\nZ\r\n0\r\n\r\n", {400}),
    ("B18c", P + b"Transfer-Encoding: chunked\r\n\r\n1;\x00ext\r\nZ\r\n0\r\n\r\n", {400}),
    ("B19", P + b"Transfer-Encoding: chunked\r\n\r\n5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\n" + G, {400}),
    ("B20", P + b"Transfer-Encoding: chunked\r\n\r\nINVALID!!!\r\n" + G, {400}),
    ("B24", P + b"Content-Length : 34\r\n\r\n", {400}),
    ("B25", b"POST / HTTP/1.1\r\n\tContent-Length: 1\r\nHost: a\r\n\r\nZ", {400}),
    ("B27", P + b": ignored\r\n\r\n", {400}),
    ("B28a", P + b"X: v\x00alue\r\n\r\n", {400}),
    ("B28b", P + b"X: va\rlue\r\n\r\n", {400}),
    ("B28c", P + b"Visible: :/\rSmuggled: :)\r\n\r\n", {400}),
    ("B29", P + b"Content-Length 10\r\n\r\n", {400}),
    ("B30a", P + b"\xefoo: bar\r\n\r\n", {400}),
    ("B30b", P + b"X\x01Y: z\r\n\r\n", {400}),
    ("B31", P + b"Transfer-\r\nEncoding: chunked\r\n\r\n", {400}),
    ("B32", b"GET / HTTP/1.1\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B33", b"GET / HTTP/1.1\nHost: a\n\n", {400}),
    ("B34", b"GET / HTTP/1.1\r\n\r\n", {400}),
    ("B35", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}),
    ("B36a", b"GET / HTTP/1.32\r\nHost: a\r\n\r\n", {400, 505}),
    ("B36b", b"GET / HTTP/4294967295.255\r\nHost: a\r\n\r\n", {400, 505}),
    ("B36c", b"GET / HTTP/\r\r1.1\r\nHost: a\r\n\r\n", {400, 505}),
    ("B37", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", {505}),
    ("B38", b"GET /\r\n\r\n", {400}),
    ("B39a", b'G=":<>(e),[T];?" / HTTP/1.1\r\nHost: a\r\n\r\n', {400}),
    ("B39b", b"\x00 / HTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B40a", b"GET ! HTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B40b", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B40c", b"GET /p#frag HTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B41a", b"GET /\nHTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B41b", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", {400}),
    ("B42", b"CONNECT victim.com:443 HTTP/1.1\r\nHost: victim.com:443\r\n\r\n", {405}),
    ("B43", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", {414}),
    ("B44a", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 65536 + b"\r\n\r\n", {431}),
    ("B44b", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 1000 + b"\r\n", {431}),
]


# Bad chunked bodies: the header was valid, so the (streaming) app has started.
BODY = {c for c, d, _ in REJECTED if c.startswith(("B15", "B16", "B17", "B18", "B19", "B20"))}


@pytest.fixture(scope="module", params=["buffered", "streamed"])
def gateway(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    # Every rejection's log line is checked: none summarised.
    gw = Gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--header-timeout",
        "3",
        "--log-repeat-limit",
        "0",
        "--wsgi-input",
        request.param,
    )
    gw.wsgi_input = request.param  # type: ignore[attr-defined]
    try:
        yield gw.wait_ready()
    finally:
        gw.stop()


def app_calls(gateway: Gateway) -> int:
    return int(requests.get(gateway.url + "/count", timeout=10).json()["calls"])


@pytest.mark.parametrize(("case", "data", "expected"), REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected(gateway: Gateway, case: str, data: bytes, expected: set[int]) -> None:
    body_case = case in BODY and gateway.wsgi_input == "streamed"  # type: ignore[attr-defined]
    logged = gateway.count_lines("rejecting request")
    before = app_calls(gateway)
    response = raw_exchange(gateway.port, data, timeout=5)
    codes = statuses(response)
    assert codes, f"{case}: no answer: {response[:200]!r}"
    assert codes[0] in expected, f"{case}: {response[:300]!r}"
    assert len(codes) == 1, f"{case}: something after the rejection was served: {response!r}"
    head = response.partition(b"\r\n\r\n")[0].lower()
    if codes[0] != 405:  # the router's 405 keeps the connection (the request was whole)
        assert b"\r\nconnection: close" in head, f"{case}: {head!r}"
    calls = app_calls(gateway) - before - 1
    assert calls == (1 if body_case else 0), f"{case}: the app was called {calls} times"
    if not body_case and codes[0] != 405:
        poll(lambda: gateway.count_lines("rejecting request") > logged, 5, f"{case}: a log line")


def test_b21_forbidden_trailer_is_never_applied(gateway: Gateway) -> None:
    data = (
        P
        + b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\nZ\r\n0\r\nContent-Length: 50\r\n\r\n"
    )
    response = raw_exchange(gateway.port, data, timeout=3)
    codes = statuses(response)
    assert codes
    assert codes[0] in (200, 400)
    if codes[0] == 200:
        assert b'"body_length": 1' in response


@pytest.mark.parametrize(
    "data",
    [
        P + b"Transfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n",  # B22
        P + b"Content-Length: 10\r\n\r\nabc",  # B23
    ],
    ids=["B22", "B23"],
)
def test_truncated_body_never_succeeds(gateway: Gateway, data: bytes) -> None:
    response = raw_exchange(gateway.port, data, timeout=5, half_close=True)
    assert 200 not in statuses(response), response


def test_b26_obs_fold_rejected_or_replaced(gateway: Gateway) -> None:
    response = raw_exchange(gateway.port, P + b"X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n")
    assert statuses(response)[0] in (200, 400)


def test_b45_valid_request_then_junk(gateway: Gateway) -> None:
    response = raw_exchange(
        gateway.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nInvalid\r\n\r\n"
    )
    assert statuses(response) == [200]


def test_b46_pipelined_after_empty_body(gateway: Gateway) -> None:
    response = raw_exchange(
        gateway.port,
        P
        + b"Content-Length: 0\r\n\r\n"
        + b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert statuses(response) == [200, 200]
    assert b'"path_info": "/2"' in response


def test_b47_head_has_no_body(gateway: Gateway) -> None:
    response = raw_exchange(
        gateway.port, b"HEAD /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    head, _, body = response.partition(b"\r\n\r\n")
    assert statuses(response) == [200]
    assert b"content-length: " in head.lower()
    assert body == b""


SMALL = [c for c, d, _ in REJECTED if len(d) < 400]


@pytest.mark.parametrize("case", SMALL)
def test_rejections_byte_by_byte(gateway: Gateway, case: str) -> None:
    """The same answer when the request arrives one byte per segment."""
    import socket
    import time

    data, expected = next((d, e) for c, d, e in REJECTED if c == case)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i in range(len(data)):
                sock.sendall(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass  # rejected before the end: the answer is waiting
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    codes = statuses(received)
    assert codes, received
    assert codes[0] in expected, received


def test_bad_inputs_did_not_hurt_the_server(gateway: Gateway) -> None:
    assert requests.get(gateway.url + "/healthz", timeout=10).text == "ok\n"
    assert gateway.proc.poll() is None
    # The apps' own errors (a read() that raised on a broken body) are logged with
    # their traceback, as they should be; the loop and the server must not have failed.
    assert "exception in callback" not in gateway.log


def test_b51_clients_that_leave_at_once(gateway: Gateway) -> None:
    import socket

    for i in range(200):
        sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        if i % 3 == 1:
            sock.sendall(b"GET / HTTP/1.1\r\nHo")
        if i % 3 == 2:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        sock.close()  # with SO_LINGER 0: a reset instead of a FIN
    assert requests.get(gateway.url + "/healthz", timeout=10).text == "ok\n"
    assert "exception in callback" not in gateway.log
