"""``--check-config`` says OK only when a start would get past configuration (issue 14).

Each case is checked twice through the real command line: ``--check-config`` must refuse
it, and a start must refuse it with the very same line (one validation path), before it
listens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.gateway_helpers import run_cli

UPSTREAM = "http://127.0.0.1:9"


def proxy_config(folder: Path, extra: str) -> list[str]:
    path = folder / "gateway.toml"
    path.write_text(f'[[proxy]]\nprefix = "/a"\nupstreams = ["{UPSTREAM}"]\n{extra}\n')
    return ["--config", str(path), "-b", "127.0.0.1:0"]


def under_a_file(folder: Path) -> str:
    """A cache folder that cannot be created: its parent is a file."""
    (folder / "a-file").write_text("not a folder\n")
    return str(folder / "a-file" / "cache")


CASES = {
    "cache-dir-not-creatable": (
        lambda folder: [
            *("--proxy", f"/={UPSTREAM}", "--cache", "--cache-dir", under_a_file(folder)),
            *("-b", "127.0.0.1:0"),
        ],
        "cache_dir: cannot create the cache folder",
    ),
    "cache-dir-a-file": (
        lambda folder: [
            *("--proxy", f"/={UPSTREAM}", "--cache", "--cache-dir"),
            *(under_a_file(folder).rsplit("/", 1)[0], "-b", "127.0.0.1:0"),
        ],
        "is not a folder",
    ),
    "cache-table-dir-not-creatable": (
        lambda folder: proxy_config(folder, f'cache = {{ dir = "{under_a_file(folder)}" }}'),
        "proxy /a: cannot create the cache folder",
    ),
    "unknown-balancer": (
        lambda folder: proxy_config(folder, 'balancer = "fastest"'),
        "proxy /a: unknown balancer 'fastest'",
    ),
    "misspelt-proxy-setting": (
        lambda folder: proxy_config(folder, "retrys = 3"),
        "proxy /a: unknown proxy settings: retrys",
    ),
    "bind-host-unresolved": (
        lambda folder: ["apps.hello_wsgi:app", "-b", "no-such-host.invalid:8000"],
        "bind no-such-host.invalid:8000: the host does not resolve",
    ),
    "access-log-folder-missing": (
        lambda folder: [
            "apps.hello_wsgi:app",
            "-b",
            "127.0.0.1:0",
            "--access-logfile",
            str(folder / "missing" / "access.log"),
        ],
        "access_logfile: the folder",
    ),
    "unix-socket-folder-missing": (
        lambda folder: ["apps.hello_wsgi:app", "-b", f"unix:{folder}/missing/app.sock"],
        "does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("workers", ["1", "2"])
def test_check_and_start_refuse_alike(case: str, workers: str, tmp_path: Path) -> None:
    make_args, expected = CASES[case]
    args = [*make_args(tmp_path), "--workers", workers]
    checked = run_cli(*args, "--check-config", timeout=20)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "configuration OK" not in checked.stdout
    line = checked.stderr.strip()
    assert line.startswith("thor-gateway: error: "), line
    assert expected in line
    assert len(line.splitlines()) == 1, line
    started = run_cli(*args, timeout=20)
    assert started.returncode == 2, started.stderr
    assert "Listening" not in started.stderr
    assert line in started.stderr.splitlines()  # the same check said the same thing
    assert not (tmp_path / "missing").exists()


def test_a_good_configuration_is_ok(tmp_path: Path) -> None:
    args = proxy_config(tmp_path, 'balancer = "least_connections"\nretries = 1')
    log = tmp_path / "access.log"
    checked = run_cli(*args, "--access-logfile", str(log), "--check-config")
    assert (checked.returncode, checked.stdout) == (0, "configuration OK\n"), checked.stderr
    assert not log.exists(), "checking creates nothing"


def test_a_cache_folder_that_can_be_created_is_ok_and_not_created(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "cache"
    args = ("--proxy", f"/={UPSTREAM}", "--cache", "--cache-dir", str(folder), "-b", "127.0.0.1:0")
    checked = run_cli(*args, "--check-config")
    assert (checked.returncode, checked.stdout) == (0, "configuration OK\n"), checked.stderr
    assert not (tmp_path / "new").exists(), "checking creates nothing"
