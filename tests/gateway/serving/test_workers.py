"""--workers: sharing sockets, replacing dead workers, --max-requests recycling."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import Load, poll

APPS = "tests.gateway.gateway_apps"


def worker_pids(gateway: Any) -> list[int]:
    """Workers started and not yet seen exiting, from the master's log."""
    started = [int(p) for p in re.findall(r"started worker (\d+)", gateway.log)]
    gone = {int(p) for p in re.findall(r"worker (\d+) (?:exited|died)", gateway.log)}
    return [p for p in started if p not in gone]


def test_workers_share_the_socket(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "-w", "3")
    poll(lambda: gateway.count_lines("is listening") >= 3, 15, "three workers")
    assert len(worker_pids(gateway)) == 3
    assert gateway.count_lines(f"Serving / -> {APPS}:info") == 1  # by the master alone
    seen = set()
    for _ in range(60):
        with requests.Session() as session:  # a new connection each time
            seen.add(session.get(gateway.url + "/", timeout=5).json()["pid"])
        if len(seen) > 1:
            break
    assert len(seen) > 1, "the kernel spread connections over the workers"
    assert gateway.proc.pid not in seen, "the master never serves"
    assert gateway.stop() == 0


@pytest.mark.parametrize("preload", [(), ("--preload",)], ids=["workers-import", "preload"])
def test_apps_bound_to_the_loop_at_import_work_in_every_worker(
    start_gateway: Any, preload: tuple[str, ...]
) -> None:
    # With --preload the master imports the apps before it forks, so a proxy or a client
    # built at import is bound to the loop the master had; each worker renews that loop's
    # selector (Loop.after_fork) instead of replacing the loop, or these requests would
    # hang.  Without it, each worker imports them onto its renewed loop.
    backend = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0")
    gateway = start_gateway(
        *preload,
        "-b",
        "127.0.0.1:0",
        "-w",
        "2",
        "--mount",
        "/fetch=tests.gateway.import_time_apps:fetch",
        "tests.gateway.import_time_apps:proxy",
        env={"IMPORT_TIME_UPSTREAM": backend.url},
    )
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    for _ in range(20):
        with requests.Session() as session:  # a new connection each time: both workers
            proxied = session.get(gateway.url + "/x", timeout=5)
            assert proxied.status_code == 200
            assert proxied.json()["path_info"] == "/x"
            fetched = session.get(gateway.url + "/fetch", timeout=5)
            assert fetched.status_code == 200
            assert fetched.json()["path_info"] == "/fetched"
    assert gateway.stop() == 0


def test_killed_worker_is_replaced(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "-w", "2")
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    victim = worker_pids(gateway)[0]
    os.kill(victim, signal.SIGKILL)
    gateway.wait_for_line(rf"worker {victim} died \(-9\): starting another")
    poll(lambda: gateway.count_lines("is listening") >= 3, 15, "a replacement worker")
    assert victim not in worker_pids(gateway)
    assert len(worker_pids(gateway)) == 2
    for _ in range(10):
        assert requests.get(gateway.url + "/", timeout=5).status_code == 200
    assert gateway.stop() == 0


def test_max_requests_recycles_without_failures(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "-w",
        "2",
        "--max-requests",
        "40",
        "--max-requests-jitter",
        "10",
    )
    with Load(gateway.port, "/r", threads=4, seconds=30) as load:
        poll(lambda: gateway.count_lines("recycling this worker") >= 2, 25, "two recyclings")
        load.wait_ok(load.ok + 20)
    assert load.failures == [], load.failures
    assert load.refused == 0
    assert gateway.count_lines(r"worker \d+ exited \(0\)") >= 2
    assert gateway.stop() == 0


def test_single_worker_recycling_refuses_nobody(start_gateway: Any) -> None:
    # One worker: while it drains and the next one starts, new connections wait in
    # the master's listen queue.
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "--max-requests", "25")
    with Load(gateway.port, "/one", threads=3, seconds=30) as load:
        poll(lambda: gateway.count_lines("recycling this worker") >= 2, 25, "two recyclings")
        load.wait_ok(load.ok + 10)
    assert load.failures == [], load.failures
    assert load.refused == 0
    assert gateway.stop() == 0


def test_workers_exit_when_the_master_is_killed(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:info", "-b", "127.0.0.1:0", "-w", "2")
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    pids = worker_pids(gateway)
    gateway.signal(signal.SIGKILL)
    gateway.wait(10)

    def all_gone() -> bool:
        alive = 0
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive += 1
            except ProcessLookupError:
                pass
        return alive == 0

    poll(all_gone, 15, "orphaned workers to drain and exit")


def test_bad_tls_files_fail_before_forking(start_gateway: Any, tmp_path: Any) -> None:
    missing = str(tmp_path / "missing.pem")
    gateway = start_gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "-w",
        "2",
        "--certfile",
        missing,
        "--keyfile",
        missing,
        ready=False,
    )
    assert gateway.wait(20) == 2
    assert "certfile: cannot load the certificate or key" in gateway.log
    assert "started worker" not in gateway.log


def test_startup_failure_in_workers_stops_with_3(start_gateway: Any) -> None:
    gateway = start_gateway(f"{APPS}:failing_startup", "-b", "127.0.0.1:0", "-w", "2", ready=False)
    assert gateway.wait(20) == 3
    assert "failed to start its apps: stopping" in gateway.log
