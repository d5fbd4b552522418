"""The examples of docs/tls.md, docs/udp.md and docs/dns.md run, and say what the docs say.

Each page embeds its script verbatim (checked here), and each script runs in
a subprocess on loopback with a deadline, so that neither can rot.
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

# page -> (script, expected output lines; each a regular expression, in order)
EXAMPLES = {
    "tls.md": (
        "tls_echo.py",
        [
            r"client: verified the server as \['localhost'\]",
            r"server: TLSv1\.[23], ALPN http/1\.1",
            r"client: received b'hello, TLS'",
        ],
    ),
    "udp.md": (
        "udp_echo.py",
        [
            r"127\.0\.0\.1: b'PING OVER 127\.0\.0\.1' from 127\.0\.0\.1",
            r"::1: b'PING OVER ::1' from ::1",
        ],
    ),
    "dns.md": (
        "dns_lookup.py",
        [
            r"::1: ::1",
            r"localhost: 127\.0\.0\.1",
            r"no-such-host\.invalid: \[Errno -?\d+\] no-such-host\.invalid: .+",
        ],
    ),
}


def run_example(script: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-W", "error", str(DOCS / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("page", sorted(EXAMPLES))
def test_page_embeds_its_example(page: str) -> None:
    script, _ = EXAMPLES[page]
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert (DOCS / "examples" / script).read_text() in blocks


@pytest.mark.parametrize("page", sorted(EXAMPLES))
def test_example_runs(page: str) -> None:
    script, expected = EXAMPLES[page]
    result = run_example(script)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), result.stdout
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    # The page shows the same output.
    shown = (DOCS / page).read_text()
    for line in lines:
        if "TLSv1" not in line and "Errno" not in line:
            assert line in shown
