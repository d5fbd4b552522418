"""The command line, run as users run it: exit statuses, messages, --check-config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import thor_gateway
from tests.gateway.gateway_helpers import ROOT, run_cli

APPS = "tests.gateway.gateway_apps"


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"thor-gateway {thor_gateway.__version__}"


def test_console_script_is_installed() -> None:
    exe = shutil.which("thor-gateway")
    assert exe is not None, "pip install -e . installs the thor-gateway command"
    result = subprocess.run(
        [exe, "--check-config", "apps.hello_wsgi:app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configuration OK\n"


@pytest.mark.parametrize(
    "args",
    [
        ["apps.hello_wsgi:app"],
        ["apps.hello_thor:handler"],
        ["-c", "apps/gateway.toml"],
        [f"{APPS}:named('x')"],
        [f"{APPS}:create_app", "--factory"],
        [f"{APPS}:not_an_app", "--interface", "wsgi"],  # forced: not checked further
    ],
)
def test_check_config_accepts(args: list[str]) -> None:
    result = run_cli("--check-config", *args)
    assert (result.returncode, result.stdout) == (0, "configuration OK\n"), result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["nosuchmodule:app"], {}, "no module named 'nosuchmodule'"),
        (["apps.hello_wsgi:nothing"], {}, "has no attribute 'nothing'"),
        ([f"{APPS}:not_an_app"], {}, "not callable"),
        (["apps.hello_wsgi:app()"], {}, "calling the factory app failed"),
        ([f"{APPS}:named(print('x'))"], {}, "literal arguments only"),
        (["apps.hello_wsgi:app", "--keep-alive", "forever"], {}, "--keep-alive: expected seconds"),
        (["apps.hello_wsgi:app", "--log-level", "loud"], {}, "invalid choice"),
        (["apps.hello_wsgi:app"], {"THOR_WORKERS": "two"}, "THOR_WORKERS: expected a whole number"),
        (["apps.hello_wsgi:app", "-c", "missing.toml"], {}, "--config missing.toml"),
        (["apps.hello_wsgi:app", "--mount", "api=x:y"], {}, "--mount: a prefix starts with '/'"),
        ([], {}, "nothing to serve"),
        (["apps.hello_wsgi:app", "--certfile", "no.pem", "--keyfile", "no.pem"], {}, "certfile"),
        (
            ["apps.hello_wsgi:app", "--access-logfile", "-", "--access-logformat", "%(h"],
            {},
            "access_logformat",
        ),
    ],
)
def test_bad_configuration_exits_2_naming_the_problem(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli("--check-config", *args, env=env)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[0]


def test_bad_key_in_config_file(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text('app = "apps.hello_wsgi:app"\ngraceful_timeout = "later"\n')
    result = run_cli("--check-config", "-c", str(toml))
    assert result.returncode == 2
    assert f"{toml}: graceful_timeout: expected seconds" in result.stderr


def test_serving_with_bad_settings_exits_2_before_binding() -> None:
    result = run_cli("apps.hello_wsgi:app", "-b", "127.0.0.1:0", "--forwarded-allow-ips", "nope")
    assert result.returncode == 2
    assert "forwarded_allow_ips" in result.stderr
    assert "Listening" not in result.stderr


def test_print_config_then_check_it(tmp_path: Path) -> None:
    result = run_cli("--print-config", "-c", "apps/gateway.toml", "--workers", "3")
    assert result.returncode == 0, result.stderr
    assert "workers = 3\n" in result.stdout
    assert "[[mount]]" in result.stdout
    saved = tmp_path / "effective.toml"
    saved.write_text(result.stdout)
    again = run_cli("--print-config", "-c", str(saved))
    assert again.stdout == result.stdout


def test_environment_is_read() -> None:
    result = run_cli(
        "--print-config",
        env={"THOR_APP": "apps.hello_wsgi:app", "WEB_CONCURRENCY": "5", "THOR_KEEP_ALIVE": "2s"},
    )
    assert result.returncode == 0, result.stderr
    assert 'app = "apps.hello_wsgi:app"' in result.stdout
    assert "workers = 5\n" in result.stdout
    assert "keep_alive = 2.0\n" in result.stdout


def test_help_lists_the_flags_users_type() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--bind", "--workers", "--mount", "--forwarded-allow-ips", "--ssl-certfile"):
        assert flag in result.stdout
