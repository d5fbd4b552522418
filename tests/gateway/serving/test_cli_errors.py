"""Errors a user reads (issue 14): one clear line each, and the user's own traceback.

Through the real command line; the apps are written to a temporary folder on
``PYTHONPATH`` (the gateway runs from the worktree).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.gateway.gateway_helpers import Gateway, poll, run_cli

ERROR = "thor-gateway: error: "

IMPORT_FAILS = """
import json


def connect():
    raise RuntimeError("database unreachable")


connection = connect()
"""

# What Starlette does when its lifespan context raises: it reports the traceback as the
# failure message, then raises the exception again.
LIFESPAN_FAILS = """
import traceback


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    try:
        raise RuntimeError("database unreachable")
    except BaseException:
        await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
        raise
"""

WSGI = """
def app(environ, start_response):
    body = b"{version}"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(ERROR), stderr
    return lines[0].removeprefix(ERROR)


def test_a_word_for_a_number() -> None:
    done = run_cli("-w", "many", "apps.hello_wsgi:app")
    assert done.returncode == 2
    assert one_error_line(done.stderr) == "-w/--workers: expected a whole number, got 'many'"


def test_a_flag_missing_its_value_took_the_app() -> None:
    done = run_cli("--threads", "apps.hello_wsgi:app")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("--threads: expected a whole number, got 'apps.hello_wsgi:app'")
    assert "did --threads miss its value? --threads N apps.hello_wsgi:app" in line
    done = run_cli("apps.hello_wsgi:app", "--graceful-timeout", "apps.x:app")
    assert "did --graceful-timeout miss its value?" in one_error_line(done.stderr)


def test_a_file_name_for_the_app() -> None:
    done = run_cli("flaskapp.py", "--check-config")
    assert done.returncode == 2
    assert one_error_line(done.stderr) == "flaskapp.py: give a module, not a file: flaskapp:app"
    done = run_cli("apps/flask_app.py:app", "--check-config")
    assert one_error_line(done.stderr).endswith("give a module, not a file: apps.flask_app:app")


def test_an_import_error_shows_the_users_frames_only(tmp_path: Path) -> None:
    (tmp_path / "brokenimport.py").write_text(IMPORT_FAILS)
    for flags in ((), ("--workers", "2")):
        done = run_cli("brokenimport:app", *flags, env={"PYTHONPATH": str(tmp_path)})
        assert done.returncode == 2
        assert done.stderr.startswith(f"{ERROR}brokenimport:app: importing brokenimport failed:")
        assert 'brokenimport.py", line 9, in <module>' in done.stderr
        assert 'brokenimport.py", line 6, in connect' in done.stderr
        assert done.stderr.rstrip().endswith("RuntimeError: database unreachable")
        assert "thor_gateway" not in done.stderr
        assert "importlib" not in done.stderr
        assert done.stderr.count(ERROR) == 1


def test_a_failing_lifespan_startup_is_reported_once(tmp_path: Path) -> None:
    (tmp_path / "lifespanfails.py").write_text(LIFESPAN_FAILS)
    gateway = Gateway("lifespanfails:app", "-b", "127.0.0.1:0", env={"PYTHONPATH": str(tmp_path)})
    try:
        assert gateway.wait(20) == 3
        time.sleep(0.1)  # the reader threads take the last lines
        log = gateway.log
    finally:
        gateway.close()
    assert log.count("application startup failed: RuntimeError: database unreachable") == 1
    assert log.count("Traceback (most recent call last)") == 1, log
    assert log.count('lifespanfails.py", line 9, in app') == 1
    assert "\\x0a" not in log  # the traceback is shown as lines, not escaped into one
    for noise in ("lifespan task raised", "never retrieved", "Task was destroyed", "asyncio"):
        assert noise not in log, log


def test_a_misspelt_environment_variable_is_named() -> None:
    done = run_cli(
        "apps.hello_wsgi:app", "--check-config", env={"THOR_WORKER": "2", "THOR_QWXZ": "1"}
    )
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "thor-gateway: warning: THOR_QWXZ is not a setting and is ignored "
        "(docs/gateway.md lists them)",
        "thor-gateway: warning: THOR_WORKER is not a setting and is ignored; "
        "did you mean THOR_WORKERS?",
    ]


def write(folder: Path, text: str, bump: float) -> None:
    path = folder / "reloadbroken.py"
    path.write_text(text)
    stamp = time.time() + bump  # a new mtime even on coarse-grained filesystems
    os.utime(path, (stamp, stamp))


def test_a_broken_app_under_reload_answers_500_until_fixed(tmp_path: Path) -> None:
    write(tmp_path, WSGI.replace("{version}", "one"), 0)
    gateway = Gateway(
        "reloadbroken:app", "-b", "127.0.0.1:0", "--reload", env={"PYTHONPATH": str(tmp_path)}
    )
    try:
        gateway.wait_ready()
        gateway.wait_for_line(f"reloading on changes under {tmp_path}")
        assert requests.get(gateway.url + "/", timeout=10).text == "one"
        write(tmp_path, "def app(environ, start_response:\n", 5)
        gateway.wait_for_line("answering 500 with the error until a file changes", 20)
        broken = requests.get(gateway.url + "/any/path", timeout=5)  # answered, not hung
        assert broken.status_code == 500
        assert "SyntaxError: '(' was never closed" in broken.text
        assert 'reloadbroken.py", line 1' in broken.text
        write(tmp_path, WSGI.replace("{version}", "two"), 10)

        def fixed() -> bool:
            return requests.get(gateway.url + "/", timeout=15).text == "two"

        poll(fixed, 40, "the fixed code to be served")
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    finally:
        gateway.stop()  # SIGTERM first: the reloader stops its child (a kill would not)
