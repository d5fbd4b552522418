"""A gateway that cannot start ends (exit status 2, a clear message); it never half-starts.

Issue 17: a ``[[proxy]]`` upstream given as a table passed ``--check-config`` but raised a
TypeError while the routes were logged, and the process stayed up with its sockets in
LISTEN, answering nobody.  Now tables work wherever the Python API takes them, and any
exception before the server is ready ends the process (the master and every worker).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import ROOT, run_cli
from tests.gateway.proxy_support import echo_server


def test_upstream_tables_in_a_proxy_table(start_gateway: Any, tmp_path: Path) -> None:
    with echo_server("a") as a, echo_server("b") as b:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f"""
[[proxy]]
prefix = "/api"
upstreams = [{{ url = "{a.url}", weight = 3 }}, "{b.url}"]
balancer = "weighted"
"""
        )
        checked = run_cli("--config", str(config), "--check-config")
        assert (checked.returncode, checked.stdout) == (0, "configuration OK\n"), checked.stderr
        printed = run_cli("--config", str(config), "--print-config")
        assert tomllib.loads(printed.stdout)["proxy"][0]["upstreams"][0] == {
            "url": a.url,
            "weight": 3,
        }
        gateway = start_gateway("-b", "127.0.0.1:0", "--config", str(config))
        assert f"proxy to {a.url} (weight 3), {b.url}" in gateway.log
        served = Counter(
            requests.get(gateway.url + "/api/x", timeout=10).json()["server"] for _ in range(8)
        )
        assert served == {"a": 6, "b": 2}
        assert gateway.stop() == 0


def test_one_upstream_table(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[[proxy]]\nupstream = { url = "http://127.0.0.1:9", weight = 2 }\n')
    checked = run_cli("--config", str(config), "--check-config")
    assert (checked.returncode, checked.stdout) == (0, "configuration OK\n"), checked.stderr


def test_check_config_checks_upstream_tables(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[proxy]]\nupstreams = [{ url = "http://127.0.0.1:9", wieght = 3 }]\n'
        '[[proxy]]\nprefix = "/b"\nupstreams = ["http://127.0.0.1:9"]\nbalancer = "fastest"\n'
    )
    checked = run_cli("--config", str(config), "--check-config")
    assert checked.returncode == 2
    assert "wieght" in checked.stderr
    config.write_text('[[proxy]]\nupstreams = ["http://127.0.0.1:9"]\nbalancer = "fastest"\n')
    checked = run_cli("--config", str(config), "--check-config")
    assert checked.returncode == 2
    assert "fastest" in checked.stderr


# Each step of a start, in order; the gateway serves one proxy route by name (so that a
# DNS answer arrives on the loop while it starts).
STEPS = [
    "thor_gateway.serving.server:Listeners.__init__",  # open the listening sockets
    "thor_gateway.serving.server:Gateway._router",  # build the handlers and the router
    "thor_gateway.proxy:ProxyHandler.startup",  # a startup hook that raises
    "thor_gateway.proxy.upstreams:UpstreamSet._update",  # a loop callback of a startup hook
    "thor_gateway.serving.route_log:log_routes",  # where issue 17's TypeError was raised
    "thor_gateway.serving.server:settle_gc",  # the last step before ready
]
WORKER_STEPS = [
    "thor_gateway.serving.workers:Master._install_signals",  # the master, before any fork
    "thor.loop:Loop.after_fork",  # a worker, before its gateway exists
]


def run_with_fault(step: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.gateway.serving.startup_faults", step]
    command += ["-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"]
    command += ["--proxy", "/=http://localhost:9", *args]
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"{step}: still running after 20 s:\n{timeout.stderr!r}") from None


@pytest.mark.parametrize("step", STEPS)
def test_a_failing_step_ends_one_process(step: str) -> None:
    done = run_with_fault(step)
    assert done.returncode == 2, done.stderr
    assert f"injected at {step}" in done.stderr
    assert "thor-gateway: error: " in done.stderr


@pytest.mark.parametrize("step", STEPS + WORKER_STEPS)
def test_a_failing_step_ends_master_and_workers(step: str) -> None:
    done = run_with_fault(step, "--workers", "2")
    assert done.returncode == 2, done.stderr
    assert f"injected at {step}" in done.stderr
