"""The example of docs/http2.md is shown on the page verbatim, and it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "http2_in_memory.py"


def test_the_in_memory_example_runs_and_is_on_the_page() -> None:
    source = EXAMPLE.read_text()
    body = source[source.index("server = H2Connection()") :].strip()
    assert body in (ROOT / "docs" / "http2.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    ).stdout.splitlines()
    assert out == [
        "server got /",
        "server sent 13 bytes",
        "client got status 200",
        "client got Hello, world!",
        "stream 1 ended",
    ]
