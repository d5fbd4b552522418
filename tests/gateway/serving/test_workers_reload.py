"""--reload: a changed .py file restarts the server; the listening socket never goes away."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.gateway.gateway_helpers import Gateway, poll

APP = """
def app(environ, start_response):
    body = b"{version}"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def write_app(folder: Path, version: str, bump: float = 0.0) -> None:
    path = folder / "reloadme.py"
    path.write_text(APP.replace("{version}", version))
    if bump:
        stamp = time.time() + bump  # a new mtime even on coarse-grained filesystems
        os.utime(path, (stamp, stamp))


def test_reload_on_change(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    gateway = Gateway("reloadme:app", "-b", "127.0.0.1:0", "--reload", cwd=tmp_path)
    try:
        gateway.wait_ready()
        gateway.wait_for_line(f"reloading on changes under {tmp_path}")
        assert requests.get(gateway.url + "/", timeout=10).text == "one"
        write_app(tmp_path, "two", bump=5)
        answers: list[str] = []

        def changed() -> bool:
            # Every attempt must be answered: the reloader holds the socket, so the
            # restart only makes connections wait.
            answers.append(requests.get(gateway.url + "/", timeout=10).text)
            return answers[-1] == "two"

        poll(changed, 20, "the new code to be served")
        assert set(answers) <= {"one", "two"}
        gateway.wait_for_line("reloadme.py changed: restarting")
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    finally:
        gateway.close()
