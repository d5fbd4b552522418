"""The server example of docs/http.md runs, with str and with bytes arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "http_hello.py"


def as_bytes(source: str) -> str:
    """The same program with host, status, phrase and headers given as bytes."""
    return source.replace('HttpServer("127.0.0.1"', 'HttpServer(b"127.0.0.1"').replace(
        'response_start(200, "OK", [("Content-Type", "text/plain")])',
        'response_start(b"200", b"OK", [(b"Content-Type", b"text/plain")])',
    )


@pytest.mark.parametrize("variant", ["str", "bytes"])
def test_hello_example(variant: str, tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    handler = source[source.index("@thor.on(server)") : source.index("print(")].strip()
    assert handler in (EXAMPLE.parent.parent / "http.md").read_text()  # the page shows this code
    assert handler in (EXAMPLE.parents[2] / "README.md").read_text()  # and so does the README
    if variant == "bytes":
        source = as_bytes(source)
        assert 'b"200"' in source
    script = tmp_path / "hello.py"
    script.write_text(source)
    proc = subprocess.Popen([sys.executable, str(script), "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        response = requests.get(url, timeout=5)
        assert response.text == "Hello, world!"
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
