"""HEAD answers the fields GET would (RFC 9110 §9.3.2), also when a transform rewrites GET.

Issue 17: with ``gzip = true`` and ``Accept-Encoding: gzip``, GET answered gzip with a weak
ETag while HEAD answered the identity representation's fields (strong ETag,
Content-Length 102400, no Content-Encoding).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.gateway.proxy_support import raw_upstream, read_all
from thor_gateway.aggregation.transform import WholeBody
from thor_gateway.proxy import ProxyHandler

BODY = b"0123456789abcdef" * 6400  # 102400 bytes of text


def answer(sock: socket.socket, head: bytes) -> None:
    sock.sendall(
        b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: "v1"\r\n'
        b"Accept-Ranges: bytes\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
    )
    if not head.startswith(b"HEAD "):
        sock.sendall(BODY)


def fields(port: int, method: str, accept: str) -> dict[str, str]:
    """The response's fields (lower-cased names, Date left out) and whether a body came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"{method} /t HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = read_all(sock, timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK", lines[0]
    out = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() != "date":
            out[name.lower()] = value.strip()
    out["(body)"] = "yes" if body else "no"
    return out


@pytest.mark.parametrize(
    ("transforms", "accept"),
    [
        ({"gzip": True}, "gzip"),
        ({"gzip": True}, "identity"),
        ({"transforms": [WholeBody(lambda body, headers: body.upper(), types=(b"text/",))]}, ""),
    ],
    ids=["gzip", "gzip-not-accepted", "whole-body"],
)
def test_head_carries_the_fields_get_would(
    live_server: Callable[..., Any], transforms: dict[str, Any], accept: str
) -> None:
    with raw_upstream(answer) as upstream:
        live = live_server()
        handler = ProxyHandler([upstream.url], loop=live.loop, **transforms)
        live.mount(handler)
        get = fields(live.port, "GET", accept)
        head = fields(live.port, "HEAD", accept)
        assert get.pop("(body)") == "yes"
        assert head.pop("(body)") == "no"
        # Framing is the server's: RFC 9112 §6.1 lets a HEAD response leave out the
        # Transfer-Encoding the GET is sent with.
        get.pop("transfer-encoding", None)
        assert head == get
        if accept == "gzip":
            assert get["content-encoding"] == "gzip"
            assert get["etag"] == 'W/"v1"'
            assert "content-length" not in get
        stopped = threading.Event()
        live.call(handler.shutdown, lambda exc: stopped.set())
        assert stopped.wait(5)
