"""The example in docs/websocket.md runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "websocket.md"


def test_doc_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = next(b for b in blocks if "client_request(b" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(DOC), "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("chat Deflate(")
    assert lines[1] == "HELLO, HELLO, "
    assert lines[2] == "[CloseReceived(code=1000, reason='bye')] ConnectionState.REMOTE_CLOSING"
    assert lines[3] == "ConnectionState.CLOSED ConnectionState.CLOSED"


def test_io_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = next(b for b in blocks if "WebSocketClient()" in b)
    # The example uses the default loop; run it in a fresh interpreter, bounded in time.
    import subprocess
    import sys

    root = DOC.parents[1]
    out = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
        check=True,
    )
    assert out.stdout.splitlines() == ["open chat", "echo: hello", "closed 1000"], out.stderr
