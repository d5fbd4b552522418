"""The examples of docs/loop.md, docs/events.md and docs/tcp.md: embedded verbatim, and they run.

Each script runs in a subprocess (warnings as errors, 60 s deadline) and its
output is compared line by line with the expected lines, which the page
shows too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# page -> (script, expected stdout lines as regular expressions)
EXAMPLES: dict[str, tuple[str, list[str]]] = {
    "loop.md": (
        "loop_timers.py",
        [
            r"timer: 10 ms \(fires first\)",
            r"timer: 20 ms",
            r"ERROR thor\.loop: exception in callback <function fail at 0x[0-9a-f]+>",
            r"Traceback \(most recent call last\):",
            r"  File .*",
            r"    .*",
            r"  File .*loop_timers\.py.*, in fail",
            r"    raise ValueError.*",
            r"ValueError: a failing callback is logged; the loop goes on",
            r"posted by worker, run by MainThread",
            r"loop stopped",
        ],
    ),
    "events.md": (
        "events_emitter.py",
        [
            r"knock from alice",
            r"first visitor: alice",
            r"knock from bob",
            r"listeners left: \[\]",
            r"sink got ring x2",
            r"unhandled 'error' raised: nobody handles this",
            r"handled: now somebody does",
        ],
    ),
    "tcp.md": (
        "tcp_echo.py",
        [
            r"client: connected to 127\.0\.0\.1",
            r"client: sent 8388608, received 8388608 bytes back",
            r"client: the writer was paused at least once",
            r"client: connect_error socket 111 Connection refused",
        ],
    ),
}


@pytest.mark.parametrize("page", sorted(EXAMPLES))
def test_page_embeds_its_example_verbatim(page: str) -> None:
    script = (DOCS / "examples" / EXAMPLES[page][0]).read_text()
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
    assert script in blocks


@pytest.mark.parametrize("page", sorted(EXAMPLES))
def test_example_runs_and_prints_what_the_page_says(page: str) -> None:
    script, expected = EXAMPLES[page]
    result = subprocess.run(
        [sys.executable, "-W", "error", str(DOCS / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), result.stdout
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    page_text = (DOCS / page).read_text()
    for line in lines:
        if not line.startswith(" ") and "0x" not in line and "Traceback" not in line:
            assert line in page_text, line
