"""Real WSGI frameworks (werkzeug, Flask) behind the WSGI adapter, under wsgiref.validate."""

from __future__ import annotations

import json
import threading
from typing import Any

import requests
from flask import Flask, Response, abort, request, stream_with_context, url_for
from werkzeug.wrappers import Request as WRequest
from werkzeug.wrappers import Response as WResponse

from tests.gateway.adapter_helpers import body_of, connect, read_until_close, status_of


class _SizedReads:
    """werkzeug reads a ``wsgi.input_terminated`` stream with ``read()`` (no size), which
    PEP 3333 leaves to that extension and ``wsgiref.validate`` rejects; this shim, placed
    between the validator and the app, turns it into ``read(<large>)`` so that the
    validator still checks everything else the app and the server do."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        return self._stream.read(1 << 40 if size is None or size < 0 else size)

    def readline(self, *args: Any) -> bytes:
        return self._stream.readline(*args)

    def __iter__(self) -> Any:
        return iter(self._stream)


def sized_reads(app: Any) -> Any:
    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.input"] = _SizedReads(environ["wsgi.input"])
        return app(environ, start_response)

    return wrapped


@WRequest.application  # type: ignore[arg-type]
def werkzeug_app(req: WRequest) -> WResponse:
    if req.path == "/form":
        upload = req.files.get("upload")
        payload = {
            "form": req.form.to_dict(),
            "file": upload.read().decode() if upload else None,
            "url_root": req.url_root,
            "remote": req.remote_addr,
        }
        return WResponse(json.dumps(payload), content_type="application/json")
    if req.path == "/json":
        return WResponse(json.dumps(req.get_json()), content_type="application/json")
    return WResponse(f"{req.method} {req.script_root}|{req.path}|{req.args.get('q')}")


def test_werkzeug_query_and_mount(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(werkzeug_app), b"/wz")
    response = requests.get(live.url + "/wz/some/where?q=%C3%A9", timeout=5)
    assert response.status_code == 200
    assert response.text == "GET /wz|/some/where|é"


def test_werkzeug_multipart_form_and_file(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(werkzeug_app), b"/wz")
    response = requests.post(
        live.url + "/wz/form",
        data={"name": "thor", "kind": "god"},
        files={"upload": ("a.txt", b"file body " * 1000)},
        timeout=5,
    )
    payload = response.json()
    assert payload["form"] == {"name": "thor", "kind": "god"}
    assert payload["file"] == "file body " * 1000
    assert payload["url_root"] == f"http://127.0.0.1:{live.port}/wz/"
    assert payload["remote"] == "127.0.0.1"


def test_werkzeug_chunked_json_body(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(werkzeug_app))

    def parts() -> Any:
        yield b'{"a": '
        yield b"[1, 2, 3]}"

    response = requests.post(
        live.url + "/json", data=parts(), headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.json() == {"a": [1, 2, 3]}


def make_flask_app(generated: list[int]) -> Flask:
    app = Flask("thor_test_app")

    @app.route("/")
    def index() -> Any:
        return {"self": url_for("index"), "other": url_for("item", n=3, _external=True)}

    @app.route("/item/<int:n>", methods=["GET", "PUT"])
    def item(n: int) -> Any:
        if n == 404:
            abort(404)
        if request.method == "PUT":
            return {"n": n, "got": len(request.get_data())}
        return {"n": n}

    @app.route("/stream")
    def stream() -> Response:
        @stream_with_context
        def generate() -> Any:
            for i in range(5):
                generated.append(i)
                yield f"line {i} {request.args.get('tag')}\n"

        return Response(generate(), mimetype="text/plain")

    @app.route("/boom")
    def boom() -> Any:
        raise RuntimeError("flask app bug")

    return app


def test_flask_routes_under_a_mount(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(make_flask_app([])), b"/flask")
    index = requests.get(live.url + "/flask/", timeout=5).json()
    assert index == {
        "self": "/flask/",
        "other": f"http://127.0.0.1:{live.port}/flask/item/3",
    }
    assert requests.get(live.url + "/flask/item/7", timeout=5).json() == {"n": 7}
    assert requests.get(live.url + "/flask/item/404", timeout=5).status_code == 404
    put = requests.put(live.url + "/flask/item/1", data=b"x" * 300_000, timeout=5)
    assert put.json() == {"n": 1, "got": 300_000}


def test_flask_streaming_response(wsgi_server: Any) -> None:
    generated: list[int] = []
    live = wsgi_server(sized_reads(make_flask_app(generated)))
    response = requests.get(live.url + "/stream?tag=t", timeout=5)
    assert response.text == "".join(f"line {i} t\n" for i in range(5))
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert generated == [0, 1, 2, 3, 4]


def test_flask_error_is_a_500_and_the_server_goes_on(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(make_flask_app([])))
    assert requests.get(live.url + "/boom", timeout=5).status_code == 500
    assert requests.get(live.url + "/item/2", timeout=5).json() == {"n": 2}


def test_flask_head_request(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(make_flask_app([])))
    with connect(live.port) as sock:
        sock.sendall(b"HEAD /item/5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        raw = read_until_close(sock)
    assert status_of(raw) == 200
    assert body_of(raw) == b""
    assert b"Content-Length: " in raw


def test_flask_concurrent_requests(wsgi_server: Any) -> None:
    live = wsgi_server(sized_reads(make_flask_app([])), threads=4)
    results: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with requests.Session() as session:
            for i in range(10):
                value = session.get(live.url + f"/item/{1000 + n * 100 + i}", timeout=5).json()["n"]
                with lock:
                    results.append(value)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted(1000 + n * 100 + i for n in range(8) for i in range(10))
