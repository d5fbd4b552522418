"""Response transforms: gzip negotiation and headers (RFC 9110 §8.8.3, §12.5.3), rewrites."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import pytest

from thor_gateway.aggregation.transform import (
    Gzip,
    HeaderRewrite,
    ResponseTransformer,
    WholeBody,
    accepted_q,
    parse_accept_encoding,
)

Headers = list[tuple[bytes, bytes]]
TEXT = [(b"Content-Type", b"text/html; charset=utf-8"), (b"ETag", b'"v1"')]


def run(
    transforms: list,
    status: int,
    headers: Headers,
    chunks: list[bytes],
    accept: bytes | None,
    method: bytes = b"GET",
) -> tuple[Headers, bytes]:
    request = [] if accept is None else [(b"Accept-Encoding", accept)]
    t = ResponseTransformer(transforms, method, request)
    out_headers = t.start(status, headers)
    body = b"".join(t.body(c) for c in chunks) + t.end()
    return out_headers, body


def field(headers: Headers, name: bytes) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name]


@pytest.mark.parametrize(
    ("value", "q"),
    [
        (b"gzip", 1.0),
        (b"deflate, gzip;q=0.5", 0.5),
        (b"GZIP;Q=0.3", 0.3),
        (b"x-gzip", 1.0),
        (b"*;q=0.2", 0.2),
        (b"gzip;q=0, *", 0.0),
        (b"br", 0.0),
        (b"gzip;q=bogus", 0.0),
        (b"gzip;q=2", 0.0),
        (b"", 0.0),
    ],
)
def test_accept_encoding_q_values(value: bytes, q: float) -> None:
    assert accepted_q(parse_accept_encoding([value]), b"gzip", (b"x-gzip",)) == q


def test_gzip_compresses_a_stream_and_fixes_the_head() -> None:
    chunks = [os.urandom(8).hex().encode() * 100 for _ in range(20)]
    headers = [
        *TEXT,
        (b"Content-Length", str(sum(map(len, chunks))).encode()),
        (b"Accept-Ranges", b"bytes"),
    ]
    out, body = run([Gzip()], 200, headers, chunks, b"br;q=1, gzip;q=0.8")
    assert gzip.decompress(body) == b"".join(chunks)
    assert len(body) < sum(map(len, chunks))
    assert field(out, b"content-encoding") == [b"gzip"]
    assert field(out, b"content-length") == []
    assert field(out, b"accept-ranges") == []
    assert field(out, b"vary") == [b"Accept-Encoding"]
    assert field(out, b"etag") == [b'W/"v1"']


def test_gzip_adds_vary_even_when_the_client_does_not_accept_gzip() -> None:
    for accept in (None, b"identity", b"gzip;q=0"):
        out, body = run([Gzip()], 200, [*TEXT, (b"Vary", b"Cookie")], [b"x" * 1000], accept)
        assert body == b"x" * 1000
        assert field(out, b"vary") == [b"Cookie", b"Accept-Encoding"]
        assert field(out, b"etag") == [b'"v1"']
        assert field(out, b"content-encoding") == []
    out, _ = run([Gzip()], 200, [*TEXT, (b"Vary", b"accept-encoding")], [b"x"], b"gzip")
    assert field(out, b"vary") == [b"accept-encoding"]


@pytest.mark.parametrize(
    ("status", "headers", "method"),
    [
        (200, [(b"Content-Type", b"image/png")], b"GET"),
        (200, [(b"Content-Type", b"text/plain"), (b"Content-Encoding", b"br")], b"GET"),
        (200, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"10")], b"GET"),
        (
            200,
            [(b"Content-Type", b"text/plain"), (b"Cache-Control", b"public, no-transform")],
            b"GET",
        ),
        (204, [(b"Content-Type", b"text/plain")], b"GET"),
        (304, [(b"Content-Type", b"text/plain")], b"GET"),
        (206, [(b"Content-Type", b"text/plain")], b"GET"),
        (200, [], b"GET"),
    ],
)
def test_gzip_skips(status: int, headers: Headers, method: bytes) -> None:
    out, body = run([Gzip()], status, headers, [b"y" * 2000], b"gzip", method)
    assert body == b"y" * 2000
    assert field(out, b"content-encoding") == field(headers, b"content-encoding")


def test_gzip_head_gets_the_fields_of_get() -> None:
    """RFC 9110 §9.3.2: HEAD answers GET's fields (issue 17); there is no body to filter."""
    headers = [*TEXT, (b"Content-Length", b"2000")]
    get, _ = run([Gzip()], 200, headers, [b"y" * 2000], b"gzip", b"GET")
    head, body = run([Gzip()], 200, headers, [], b"gzip", b"HEAD")
    assert head == get
    assert field(head, b"content-encoding") == [b"gzip"]
    assert field(head, b"etag") == [b'W/"v1"']
    assert body == b""


def test_gzip_flushes_each_chunk_when_asked() -> None:
    t = ResponseTransformer([Gzip(flush_each_chunk=True)], b"GET", [(b"Accept-Encoding", b"gzip")])
    t.start(200, [(b"Content-Type", b"text/event-stream")])
    first = t.body(b"data: 1\n\n")
    d = __import__("zlib").decompressobj(31)
    assert d.decompress(first) == b"data: 1\n\n"  # readable at once, not held back
    rest = t.body(b"data: 2\n\n") + t.end()
    assert d.decompress(rest) == b"data: 2\n\n"


def test_header_rewrite() -> None:
    rw = HeaderRewrite(
        set={b"Server": b"edge"}, add=[(b"X-Frame-Options", b"DENY")], remove=[b"X-Powered-By"]
    )
    out, body = run(
        [rw], 200, [(b"server", b"werkzeug"), (b"X-Powered-By", b"php"), (b"A", b"1")], [b"b"], None
    )
    assert out == [(b"A", b"1"), (b"Server", b"edge"), (b"X-Frame-Options", b"DENY")]
    assert body == b"b"
    only_errors = HeaderRewrite(add=[(b"X-Error", b"1")], when=lambda s, h: s >= 500)
    assert run([only_errors], 200, [], [], None)[0] == []
    assert run([only_errors], 502, [], [], None)[0] == [(b"X-Error", b"1")]


def add_field(body: bytes, headers: Headers) -> bytes:
    doc = json.loads(body)
    doc["via"] = "thor"
    return json.dumps(doc).encode()


def test_whole_body_then_gzip_chain() -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Content-Length", b"8"), (b"ETag", b'"e"')]
    out, body = run(
        [WholeBody(add_field), Gzip(min_size=0)], 200, headers, [b'{"a":', b" 1}"], b"gzip"
    )
    assert json.loads(gzip.decompress(body)) == {"a": 1, "via": "thor"}
    assert field(out, b"etag") == [b'W/"e"']
    assert field(out, b"content-length") == []


def test_whole_body_passes_large_or_other_bodies_through() -> None:
    wb = WholeBody(add_field, max_size=10)
    big = [b'{"a": "', b"x" * 20, b'"}']
    _, body = run([wb], 200, [(b"Content-Type", b"application/json")], big, None)
    assert body == b"".join(big)
    _out, body = run(
        [wb],
        200,
        [(b"Content-Type", b"application/json"), (b"Content-Length", b"99")],
        [b"{}"],
        None,
    )
    assert body == b"{}"
    _, body = run([wb], 200, [(b"Content-Type", b"text/html")], [b"{}"], None)
    assert body == b"{}"
    _, body = run([wb], 404, [(b"Content-Type", b"application/json")], [b"{}"], None)
    assert body == b"{}"
    _, body = run(
        [wb],
        200,
        [(b"Content-Type", b"application/json"), (b"Content-Encoding", b"gzip")],
        [b"{}"],
        None,
    )
    assert body == b"{}"


def test_transformed_exchange_on_an_app_handler(live_server: Any) -> None:
    import requests

    from thor_gateway.aggregation.transform import TransformedExchange

    class App:
        def handle(self, exchange: Any, request: Any) -> None:
            def done(trailers: Any) -> None:
                exchange.response_start(
                    200, b"OK", [("Content-Type", "text/plain"), ("Content-Length", "4000")]
                )
                for _ in range(4):
                    exchange.response_body(b"a" * 1000)
                exchange.response_done([])

            exchange.on("request_done", done)

    class Gzipped:
        def handle(self, exchange: Any, request: Any) -> None:
            App().handle(TransformedExchange(exchange, [Gzip()]), request)

    live = live_server()
    live.mount(Gzipped())
    with requests.get(
        live.url + "/", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10
    ) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert "Content-Length" not in response.headers
        raw = response.raw.read(decode_content=False)
    assert len(raw) < 100
    assert gzip.decompress(raw) == b"a" * 4000


def test_transform_handler_gzips_a_flask_app(live_server: Any) -> None:
    import threading

    import requests
    from flask import Flask

    from thor_gateway.aggregation.transform import TransformHandler
    from thor_gateway.hosting.wsgi import WsgiHandler

    app = Flask(__name__)

    @app.get("/")
    def index() -> dict[str, str]:
        return {"text": "thor " * 200}

    live = live_server()
    wsgi = WsgiHandler(app, threads=2, max_queue=4, loop=live.loop)
    live.mount(TransformHandler(wsgi, [Gzip()]))
    with requests.get(
        live.url + "/", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10
    ) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Vary"] == "Accept-Encoding"
        raw = response.raw.read(decode_content=False)
    assert json.loads(gzip.decompress(raw)) == {"text": "thor " * 200}
    assert len(raw) < 200
    done = threading.Event()
    live.call(TransformHandler(wsgi, []).shutdown, lambda exc: done.set())
    assert done.wait(5)
    wsgi.pool.shutdown(wait=True, timeout=10)
