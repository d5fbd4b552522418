"""The sans-IO cores load no IO module and open no descriptor, checked in a fresh interpreter.

Reading import lines is not enough: a package's ``__init__`` runs before its submodules, and
what it imports counts.  So each core is imported in a new process, and what it added to
``sys.modules`` and to the open descriptors is compared with a bare interpreter's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO_MODULES = {
    "socket",
    "_socket",
    "selectors",
    "select",
    "ssl",
    "_ssl",
    "signal",
    "asyncio",
    "concurrent.futures",
    "thor.loop",
    "thor.tcp",
    "thor.tls",
    "thor.udp",
    "thor.dns",
}

PROBE = """
import json, os, sys
before_modules = set(sys.modules)
before_fds = set(os.listdir("/proc/self/fd"))
import {module}
print(json.dumps({{
    "modules": sorted(set(sys.modules) - before_modules),
    "fds": sorted(set(os.listdir("/proc/self/fd")) - before_fds),
}}))
"""

CORES = [
    "thor.http.protocol",
    "thor.http2.protocol",
    "thor.websocket.protocol",
    "thor.proxy_protocol",
]


@pytest.mark.parametrize("module", CORES)
def test_a_core_loads_no_io_module_and_opens_no_descriptor(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    added = json.loads(out.stdout)
    assert module in added["modules"], "the probe imported nothing"
    assert not IO_MODULES & set(added["modules"]), f"{module} loads IO modules"
    assert added["fds"] == [], f"{module} opened descriptors: {added['fds']}"


def test_the_probe_sees_an_io_import() -> None:
    """The check above can fail: importing the loop is caught."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module="thor.loop")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    added = json.loads(out.stdout)
    assert "selectors" in added["modules"] or "thor.loop" in added["modules"]
