"""A small Flask app; mounted under a prefix it builds its URLs with it.

thor-gateway --mount /flask=apps.flask_app:app
"""

from __future__ import annotations

from flask import Flask, request, url_for

app = Flask(__name__)


@app.get("/")
def index() -> dict[str, str]:
    """Where the app thinks it is: SCRIPT_NAME and the URL it builds for itself."""
    return {
        "script_name": request.script_root,
        "path": request.path,
        "self": url_for("index"),
        "client": request.remote_addr or "",
        "scheme": request.scheme,
    }


@app.post("/echo")
def echo() -> tuple[bytes, int, dict[str, str]]:
    """The request body back."""
    return request.get_data(), 200, {"Content-Type": "application/octet-stream"}
