"""The Autobahn gate (kosoku's fuzzingclient), when kosoku is installed: against the core,
a native Thor echo handler, thor-gateway hosting an ASGI echo app, and thor-gateway
``--proxy`` relaying to the native echo.

Sections 1-7 and 10, and the first four cases (16 to 1,024-byte messages) of every
permessage-deflate option set in 12 and 13. The full run is ``python
tests/websocket/autobahn.py -i '*'`` (see docs/websocket.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("autobahn.py")
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
CASES += [f"12.{s}.{n}" for s in range(1, 6) for n in range(1, 5)]
CASES += [f"13.{s}.{n}" for s in range(1, 8) for n in range(1, 5)]


@pytest.mark.skipif(shutil.which("kosoku") is None, reason="kosoku is not installed")
@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", ["core", "native", "gateway", "proxy"])
def test_autobahn_gate(tmp_path: Path, target: str) -> None:
    """``core``: the sans-IO core alone; ``native``: apps/ws_echo.py on thor.websocket;
    ``gateway``: thor-gateway hosting the ASGI echo of tests/websocket/asgi_echo.py;
    ``proxy``: thor-gateway ``--proxy`` in front of ``native`` (frames relayed, not parsed)."""
    command = [sys.executable, str(SCRIPT), "-o", str(tmp_path), "--target", target]
    for case in CASES:
        command += ["-i", case]
    out = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    index = json.loads((tmp_path / "index.json").read_text())
    [results] = index.values()
    assert len(results) == 247 + 48, "kosoku ran the whole selection"
    behaviours = {r["behavior"] for r in results.values()}
    assert behaviours <= {"OK", "INFORMATIONAL"}, out.stdout


CLIENT_SCRIPT = Path(__file__).with_name("autobahn_client.py")
# The same selection as the servers'; the rest through
# `python tests/websocket/autobahn_client.py -i '*'`.
CLIENT_CASES = CASES


@pytest.mark.skipif(shutil.which("kosoku") is None, reason="kosoku is not installed")
@pytest.mark.timeout(300)
def test_autobahn_client_gate(tmp_path: Path) -> None:
    """kosoku's fuzzingserver against thor.WebSocketClient, echoing."""
    command = [sys.executable, str(CLIENT_SCRIPT), "-o", str(tmp_path)]
    for case in CLIENT_CASES:
        command += ["-i", case]
    out = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    results = {}
    for run in ("main", "no-context-takeover"):  # see autobahn_client.groups
        [found] = json.loads((tmp_path / run / "index.json").read_text()).values()
        results.update(found)
    assert len(results) == 247 + 48, "kosoku ran the whole selection"
    behaviours = {r["behavior"] for r in results.values()}
    assert behaviours <= {"OK", "INFORMATIONAL"}, out.stdout
