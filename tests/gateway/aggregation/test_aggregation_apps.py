"""The aggregation examples in apps/, served for real: Thor aggregator, services, Flask."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

import apps.aggregate_services as services_app
import apps.aggregate_thor as thor_app
import apps.flask_fanout as flask_app
from tests.gateway.proxy_support import EchoServer
from thor_gateway.aggregation import Call, client_for
from thor_gateway.aggregation.blocking import BlockingClient
from thor_gateway.hosting.native import NativeHandler

DOCS = {"/a.json": b'{"a": 1}', "/b.json": b'{"b": 2}', "/c.json": b'{"c": 3}'}


class Origin(BaseHTTPRequestHandler):
    """The benchmark's backend: three small JSON documents."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = DOCS.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@contextmanager
def origin() -> Iterator[str]:
    server = EchoServer()  # reuse its threading and shutdown, with the Origin handler
    server.httpd.RequestHandlerClass = Origin
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def served(live_server: Callable[..., Any]) -> Iterator[Callable[[Any, bytes], Any]]:
    made: list[Any] = []

    def serve(handler: Any, prefix: bytes = b"") -> Any:
        live = live_server()
        live.mount(handler, prefix)
        made.append(live)
        return live

    yield serve
    for live in made:
        live.call(client_for(live.loop).close)


def test_aggregate_thor_answers_the_merge(
    served: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with origin() as base:
        monkeypatch.setattr(thor_app, "CALLS", {p: Call(base + p) for p in thor_app.PATHS})
        live = served(thor_app.app)
        for _ in range(3):
            response = requests.get(live.url + "/", timeout=10)
            assert response.status_code == 200
            assert response.json() == {"a": 1, "b": 2, "c": 3}
        # a backend that fails makes the answer a 502, never a partial merge
        monkeypatch.setattr(thor_app, "CALLS", {"x": Call(base + "/missing")})
        assert requests.get(live.url + "/", timeout=10).status_code == 502


def test_aggregate_services_dashboard(
    served: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = served(NativeHandler(services_app.services), b"/svc")
    monkeypatch.setattr(services_app, "SERVICES_URL", svc.url + "/svc")
    live = served(services_app.app)
    doc = requests.get(live.url + "/dashboard/7", timeout=10).json()
    assert doc == {
        "user": {"id": 7, "name": "user 7"},
        "orders": [{"order": 701, "total": 10}, {"order": 702, "total": 20}],
        "recommendations": ["item-7-0", "item-7-1", "item-7-2"],
        "missing": [],
    }
    assert requests.get(live.url + "/nothing", timeout=10).status_code == 404
    # the services gone: the required user call fails -> 502
    monkeypatch.setattr(services_app, "SERVICES_URL", "http://127.0.0.1:1/svc")
    assert requests.get(live.url + "/dashboard/7", timeout=10).status_code == 502


def test_flask_view_fans_out_through_the_blocking_client(
    wsgi_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with origin() as base:
        monkeypatch.setattr(flask_app, "BASE", base)
        live = wsgi_server(flask_app.app, validate=False)
        monkeypatch.setattr(flask_app, "backends", BlockingClient(live.loop))
        response = requests.get(live.url + "/", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"a": 1, "b": 2, "c": 3}
        monkeypatch.setattr(flask_app, "BASE", base + "/nope")
        response = requests.get(live.url + "/", timeout=10)
        assert response.status_code == 502
        assert sorted(response.json()["failed"]) == ["/a.json", "/b.json", "/c.json"]
        live.call(client_for(live.loop).close)


def test_origin_documents() -> None:
    assert {json.loads(v).popitem()[1] for v in DOCS.values()} == {1, 2, 3}
