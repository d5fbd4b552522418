"""SIGHUP deploys the code on disk (issue 14): workers import the apps, not the master.

The app lives in a temporary folder (on ``PYTHONPATH``; the gateway runs from the
worktree, so that its own code is the one under test).  Each version writes its pid to a
file when it is imported, which tells who imported it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.gateway.gateway_helpers import Gateway, poll

APP = """
import os

with open(os.environ["IMPORTS_FILE"], "a") as imports:
    imports.write(f"{os.getpid()}\\n")


def app(environ, start_response):
    body = b"{version}"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""
BROKEN = "def app(environ, start_response:\n    pass\n"


def write_app(folder: Path, text: str) -> None:
    path = folder / "deployme.py"
    path.write_text(text)
    stamp = time.time() + len(text)  # a new mtime (and size) for the bytecode cache
    os.utime(path, (stamp, stamp))


def start(folder: Path, *flags: str) -> Gateway:
    env = {"PYTHONPATH": str(folder), "IMPORTS_FILE": str(folder / "imports.txt")}
    gateway = Gateway("deployme:app", "-b", "127.0.0.1:0", "-w", "2", *flags, env=env)
    try:
        gateway.wait_ready()
        poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    except BaseException:
        gateway.close()
        raise
    return gateway


def answers(gateway: Gateway, count: int = 10) -> set[str]:
    seen = set()
    for _ in range(count):
        with requests.Session() as session:  # a new connection each time: any worker
            seen.add(session.get(gateway.url + "/", timeout=10).text)
    return seen


def hup_and_wait_listening(gateway: Gateway, listening: int) -> None:
    gateway.signal(signal.SIGHUP)
    poll(lambda: gateway.count_lines("is listening") >= listening, 20, "the new workers")
    poll(lambda: gateway.count_lines(r"worker \d+ exited") >= listening - 2, 20, "the old ones")


def importers(folder: Path) -> list[int]:
    return [int(line) for line in (folder / "imports.txt").read_text().split()]


def test_sighup_serves_the_edited_code(tmp_path: Path) -> None:
    write_app(tmp_path, APP.replace("{version}", "one"))
    gateway = start(tmp_path)
    try:
        assert answers(gateway) == {"one"}
        # The master checked the import in a child; it never imported the app itself.
        assert gateway.proc.pid not in importers(tmp_path)
        write_app(tmp_path, APP.replace("{version}", "two!"))
        hup_and_wait_listening(gateway, 4)
        assert answers(gateway) == {"two!"}
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_a_broken_edit_keeps_the_old_workers(tmp_path: Path) -> None:
    write_app(tmp_path, APP.replace("{version}", "one"))
    gateway = start(tmp_path)
    try:
        write_app(tmp_path, BROKEN)
        gateway.signal(signal.SIGHUP)
        failed = gateway.wait_for_line(r"worker \d+ could not start: (.*)", 20)
        assert "deployme:app: SyntaxError: '(' was never closed" in failed[1]
        assert "deployme.py, line 1" in failed[1]
        assert "the old workers keep serving" in failed[1]
        assert gateway.count_lines(r"worker \d+ could not start") == 1
        assert answers(gateway) == {"one"}
        assert gateway.proc.poll() is None
        # Fixed, and told again: the new code is served.
        write_app(tmp_path, APP.replace("{version}", "three"))
        hup_and_wait_listening(gateway, 4)
        assert answers(gateway) == {"three"}
        assert gateway.stop() == 0
    finally:
        gateway.close()


def test_preload_imports_once_in_the_master(tmp_path: Path) -> None:
    write_app(tmp_path, APP.replace("{version}", "one"))
    gateway = start(tmp_path, "--preload")
    try:
        assert importers(tmp_path) == [gateway.proc.pid]  # the workers share its import
        write_app(tmp_path, APP.replace("{version}", "two!"))
        hup_and_wait_listening(gateway, 4)
        assert answers(gateway) == {"one"}  # gunicorn's --preload: HUP keeps the loaded code
        assert gateway.stop() == 0
    finally:
        gateway.close()
