"""The HTTP client's documentation example runs and does what the page says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .client_support import stdlib_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "http_client_get.py"


def test_example_fetches_urls_concurrently() -> None:
    with stdlib_server() as srv:
        urls = [f"http://127.0.0.1:{srv.server_port}/size/{n}" for n in (10, 100000)]
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), *urls],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert done.returncode == 0, done.stderr
    assert f"{urls[0]}: 200 OK" in done.stdout
    assert f"{urls[0]}: 10 body bytes" in done.stdout
    assert f"{urls[1]}: 100000 body bytes" in done.stdout
    assert "  Content-Length: 100000" in done.stdout
    assert done.stderr == ""


def test_example_reports_errors() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "ftp://127.0.0.1/"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "ftp://127.0.0.1/: error 400: Invalid URL" in done.stdout


def test_docs_page_names_every_setting() -> None:
    from thor.http.client import HttpClient

    page = (ROOT / "docs" / "http-client.md").read_text()
    settings = [
        name
        for name, value in vars(HttpClient).items()
        if not name.startswith("_")
        and not callable(value)
        and not isinstance(value, property)
        and name != "exchange_class"
    ]
    assert len(settings) >= 12
    for name in settings:
        assert f"`{name}`" in page, name
