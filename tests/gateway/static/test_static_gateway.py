"""--static and [[static]]: settings on every surface, and thor-gateway serving a folder."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import run_cli
from thor_gateway.serving import config, config_text
from thor_gateway.serving.cli import build_parser, resolve
from thor_gateway.serving.config import ConfigError, StaticRoute

APPS = "tests.gateway.gateway_apps"


def settings_of(argv: list[str], environ: dict[str, str] | None = None) -> config.Settings:
    return resolve(build_parser().parse_args(argv), environ or {})


def test_flag_environment_and_toml(tmp_path: Path) -> None:
    folder = str(tmp_path)
    s = settings_of(["--static", f"/static={folder}", "--static", f"/media/={folder}"])
    assert s.static == [StaticRoute("/static", folder), StaticRoute("/media", folder)]
    s = settings_of([], {"THOR_STATIC": f"/a={folder}; /b={folder}"})
    assert [r.prefix for r in s.static] == ["/a", "/b"]
    toml = tmp_path / "g.toml"
    toml.write_text(
        f"[[static]]\nprefix = '/static'\npath = '{folder}'\n"
        "cache_control = 'public, max-age=60'\nindex = true\nfollow_symlinks = true\n"
        f"[[static]]\nprefix = '/raw'\npath = '{folder}'\nprecompressed = false\n"
    )
    s = settings_of(["-c", str(toml)])
    assert s.static == [
        StaticRoute("/static", folder, "public, max-age=60", True, True, True),
        StaticRoute("/raw", folder, precompressed=False),
    ]
    # --print-config writes them back as tables that read back equal.
    again = tmp_path / "again.toml"
    again.write_text(config_text.to_toml(s))
    assert settings_of(["-c", str(again)]).static == s.static


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[static]]\nprefix = '/s'\n", "needs path"),
        ("[[static]]\nprefix = '/s'\npath = '.'\ncolour = 'red'\n", "unknown key"),
        ("[[static]]\nprefix = 's'\npath = '.'\n", "starts with '/'"),
        ("[[static]]\nprefix = '/s'\npath = '.'\nindex = 'yes'\n", "true or false"),
        ("[[static]]\nprefix = '/s'\npath = '.'\ncache_control = \"a\\nb\"\n", "header value"),
        ("[[static]]\nprefix = '/s'\npath = '/no/such/folder'\n", "not a folder"),
    ],
)
def test_toml_errors_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as caught:
        settings_of(["-c", str(toml)])
    assert "static" in caught.value.where
    assert problem in caught.value.problem


def test_flag_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--static"):
        settings_of(["--static", "/static"])
    with pytest.raises(ConfigError, match="twice"):
        settings_of(["m:a", "--static", f"/={tmp_path}"])
    # A folder alone is something to serve.
    assert settings_of(["--static", f"/={tmp_path}"]).all_mounts() == []


def test_check_config_refuses_a_missing_folder(tmp_path: Path) -> None:
    done = run_cli("--check-config", "--static", f"/s={tmp_path / 'missing'}")
    assert done.returncode == 2
    assert "not a folder" in done.stderr


def test_static_beside_apps_longest_prefix_wins(start_gateway: Any, tmp_path: Path) -> None:
    (tmp_path / "site.css").write_bytes(b"body{}\n")
    (tmp_path / "site.css.gz").write_bytes(gzip.compress(b"body{}\n"))
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "x").write_bytes(b"a file, not the app\n")
    toml = tmp_path / "g.toml"
    toml.write_text(
        f"[[static]]\nprefix = '/static'\npath = '{tmp_path}'\n"
        "cache_control = 'public, max-age=31536000, immutable'\n"
    )
    gateway = start_gateway(
        f"{APPS}:named('root')",
        "-c",
        str(toml),
        "-b",
        "127.0.0.1:0",
        "--mount",
        f"/static/api={APPS}:named('api')",
    )
    assert "Serving /static -> files in" in gateway.log
    response = requests.get(gateway.url + "/static/site.css", timeout=10)
    assert response.status_code == 200
    assert response.content == b"body{}\n"  # requests decodes the gzip it asked for
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # The longer prefix, an app, wins over the folder; shorter and unrelated paths go on.
    assert requests.get(gateway.url + "/static/api/x", timeout=10).json()["app"] == "api"
    assert requests.get(gateway.url + "/staticx", timeout=10).json()["app"] == "root"
    assert requests.get(gateway.url + "/other", timeout=10).json()["app"] == "root"
    assert requests.get(gateway.url + "/static/nope.css", timeout=10).status_code == 404


DJANGO_SETTINGS = """
SECRET_KEY = "test-only"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
STATIC_URL = "/static/"
STATIC_ROOT = {root!r}
"""


def test_django_admin_static_files(start_gateway: Any, tmp_path: Path) -> None:
    # Django is a test extra (setup.py): this runs wherever the suite runs, never skipped.
    root = tmp_path / "collected"
    (tmp_path / "static_settings.py").write_text(DJANGO_SETTINGS.format(root=str(root)))
    collect = textwrap.dedent(
        """
        import django
        from django.core.management import call_command
        django.setup()
        call_command("collectstatic", interactive=False, verbosity=0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", collect],
        cwd=tmp_path,
        env={"DJANGO_SETTINGS_MODULE": "static_settings", "PYTHONPATH": str(tmp_path)},
        check=True,
        timeout=120,
    )
    base_css = root / "admin" / "css" / "base.css"
    assert base_css.is_file()
    gateway = start_gateway("-b", "127.0.0.1:0", "--static", f"/static={root}")
    response = requests.get(gateway.url + "/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.content == base_css.read_bytes()
    etag = response.headers["ETag"]
    # What the admin's pages link besides: scripts and SVG icons.
    for name in ("admin/js/core.js", "admin/img/icon-yes.svg"):
        response = requests.get(f"{gateway.url}/static/{name}", timeout=10)
        assert response.status_code == 200, name
        assert response.content == (root / name).read_bytes()
    revalidated = requests.get(
        gateway.url + "/static/admin/css/base.css", headers={"If-None-Match": etag}, timeout=10
    )
    assert revalidated.status_code == 304


def test_the_docs_example_reads(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "gateway.md").read_text()
    section = docs.split("## Static files", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    toml = tmp_path / "static.toml"
    toml.write_text(example.replace("./public", str(tmp_path)))
    (route,) = settings_of(["-c", str(toml)]).static
    assert route == StaticRoute("/static", str(tmp_path), "public, max-age=31536000, immutable")
