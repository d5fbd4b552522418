"""A small Flask app; mounted under a prefix it builds its URLs with it.

    thor-gateway --mount /flask=apps.flask_app:app

Flask is not a dependency of Thor: without it, ``app`` is a stand-in WSGI app
that says so (501), so that ``apps/gateway.toml`` still starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

try:
    from flask import Flask, request, url_for
except ImportError:  # pragma: no cover - the test environment has Flask
    Flask = None  # type: ignore[assignment,misc]


def _without_flask(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b"Flask is not installed: python -m pip install flask\n"
    start_response(
        "501 Not Implemented",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def create_app() -> Any:
    """The Flask app (or the stand-in)."""
    if Flask is None:  # pragma: no cover
        return _without_flask
    flask_app = Flask(__name__)

    @flask_app.get("/")
    def index() -> dict[str, str]:
        """Where the app thinks it is: SCRIPT_NAME and the URL it builds for itself."""
        return {
            "script_name": request.script_root,
            "path": request.path,
            "self": url_for("index"),
            "client": request.remote_addr or "",
            "scheme": request.scheme,
        }

    @flask_app.post("/echo")
    def echo() -> tuple[bytes, int, dict[str, str]]:
        """The request body back."""
        return request.get_data(), 200, {"Content-Type": "application/octet-stream"}

    return flask_app


app = create_app()
