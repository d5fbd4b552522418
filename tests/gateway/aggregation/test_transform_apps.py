"""apps/transform_json.py: JSON and HTML rewritten in flight through the proxy, then gzip."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import requests

import apps.transform_json as transform_app
from tests.gateway.proxy_support import raw_upstream
from thor_gateway.proxy import ProxyHandler

PAGES = {
    b"/doc": (b"application/json", b'{"id": 1, "internal_cost": 7}'),
    b"/page": (b"text/html; charset=utf-8", b"<html><body class='x'><p>hi</p></body></html>"),
    b"/logo": (b"image/png", b"\x89PNG..."),
}


def site(sock: socket.socket, head: bytes) -> None:
    path = head.split(b" ")[1]
    ctype, body = PAGES[path]
    sock.sendall(
        b'HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nETag: "v1"\r\n'
        b"X-Powered-By: php\r\nConnection: close\r\n\r\n%s" % (ctype, len(body), body)
    )


def test_transform_app_rewrites_json_and_html(live_server: Callable[..., Any]) -> None:
    with raw_upstream(site) as up:
        live = live_server()
        handler = ProxyHandler([up.url], loop=live.loop, transforms=transform_app.TRANSFORMS)
        live.mount(handler)
        plain = requests.get(live.url + "/doc", headers={"Accept-Encoding": "identity"}, timeout=10)
        assert plain.json() == {"id": 1, "served_by": "thor"}
        assert plain.headers["ETag"] == 'W/"v1"'
        assert plain.headers["X-Content-Type-Options"] == "nosniff"
        assert "X-Powered-By" not in plain.headers
        assert plain.headers["Vary"] == "Accept-Encoding"

        with requests.get(
            live.url + "/page", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10
        ) as raw:
            assert raw.headers["Content-Encoding"] == "gzip"
            html = gzip.decompress(raw.raw.read())
        assert html == (
            b"<html><body class='x'>" + transform_app.BANNER + b"<p>hi</p></body></html>"
        )

        logo = requests.get(live.url + "/logo", headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert logo.content == b"\x89PNG..."
        assert logo.headers["ETag"] == '"v1"'  # untouched bytes keep their strong validator
        assert "Content-Encoding" not in logo.headers
        done = threading.Event()
        live.call(handler.shutdown, lambda exc: done.set())
        assert done.wait(5)


def test_rewrite_functions_leave_other_bodies_alone() -> None:
    assert transform_app.rewrite_json(b"[1, 2]", []) == b"[1, 2]"
    assert transform_app.rewrite_json(b"not json", []) == b"not json"
    assert transform_app.add_banner(b"no body tag", []) == transform_app.BANNER + b"no body tag"
    assert json.loads(transform_app.rewrite_json(b'{"internal_x": 1}', [])) == {"served_by": "thor"}
