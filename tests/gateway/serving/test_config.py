"""Settings: parsing, layering (defaults < file < environment < flags), TOML, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from thor_gateway.serving import config
from thor_gateway.serving.cli import build_parser, resolve
from thor_gateway.serving.config import Bind, ConfigError, Mount, ProxyRoute

ROOT = Path(__file__).resolve().parents[3]


def settings_of(argv: list[str], environ: dict[str, str] | None = None) -> config.Settings:
    return resolve(build_parser().parse_args(argv), environ or {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", Bind("tcp", host="127.0.0.1", port=8000)),
        ("[::1]:9000", Bind("tcp", host="::1", port=9000)),
        (":8080", Bind("tcp", host="", port=8080)),
        ("localhost", Bind("tcp", host="localhost", port=8000)),
        ("unix:/tmp/app.sock", Bind("unix", path="/tmp/app.sock")),
        ("fd://3", Bind("fd", fd=3)),
    ],
)
def test_bind_spellings(text: str, expected: Bind) -> None:
    assert config.parse_bind(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:99999", "::1:80", "[::1]", "unix:", "fd://x", "h:p"])
def test_bad_binds(text: str) -> None:
    with pytest.raises(ValueError):
        config.parse_bind(text)


def test_defaults() -> None:
    s = settings_of(["mod:app"])
    assert s.listen_addresses() == [Bind("tcp", host="127.0.0.1", port=8000)]
    assert s.workers == 1
    assert s.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert s.all_mounts() == [Mount("/", "mod:app")]


def test_host_port_uds_fd_add_addresses() -> None:
    s = settings_of(["m:a", "--host", "::1", "--port", "9001", "--uds", "/tmp/x.sock", "--fd", "5"])
    assert s.listen_addresses() == [
        Bind("tcp", host="::1", port=9001),
        Bind("unix", path="/tmp/x.sock"),
        Bind("fd", fd=5),
    ]
    assert settings_of(["m:a", "--port", "0"]).listen_addresses() == [
        Bind("tcp", host="127.0.0.1", port=0)
    ]


def test_repeated_binds_and_mounts() -> None:
    s = settings_of(
        ["-b", "127.0.0.1:1", "--bind", "[::1]:2", "--mount", "/api=a:b", "--mount", "/x/=c:d"]
    )
    assert [str(b) for b in s.bind] == ["127.0.0.1:1", "[::1]:2"]
    assert s.mount == [Mount("/api", "a:b"), Mount("/x", "c:d")]


def test_units() -> None:
    s = settings_of(
        ["m:a", "--keep-alive", "500ms", "--graceful-timeout", "2m", "--max-body-size", "10m"]
    )
    assert s.keep_alive == pytest.approx(0.5)
    assert s.graceful_timeout == 120.0
    assert s.max_body_size == 10 * 1024 * 1024


def test_layering(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text('app = "file:app"\nworkers = 3\nthreads = 7\nkeep_alive = 9\nbacklog = 5\n')
    env = {"THOR_WORKERS": "4", "THOR_THREADS": "6", "WEB_CONCURRENCY": "99"}
    s = settings_of(["-c", str(toml), "--threads", "2"], env)
    assert s.app == "file:app"  # file
    assert s.backlog == 5  # file
    assert s.workers == 4  # THOR_ env beats the file, and beats WEB_CONCURRENCY
    assert s.threads == 2  # the flag beats everything
    assert s.keep_alive == 9.0
    assert settings_of(["m:a"], {"WEB_CONCURRENCY": "3"}).workers == 3


def test_environment_lists() -> None:
    env = {
        "FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.1",
        "THOR_BIND": "127.0.0.1:1,unix:/tmp/s",
        "THOR_MOUNT": "/a=m:a,/b=m:b",
        "THOR_RELOAD": "yes",
    }
    s = settings_of([], env)
    assert s.forwarded_allow_ips == ["10.0.0.0/8", "192.168.1.1"]
    assert [str(b) for b in s.bind] == ["127.0.0.1:1", "unix:/tmp/s"]
    assert [m.prefix for m in s.mount] == ["/a", "/b"]
    assert s.reload is True


def test_toml_tables(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text(
        'bind = ["127.0.0.1:0"]\n'
        "[[mount]]\nprefix = '/api'\napp = 'a:b'\ninterface = 'wsgi'\n"
        "[[mount]]\nprefix = '/'\napp = 'c:make'\nfactory = true\n"
        "[[proxy]]\nprefix = '/up'\nupstreams = ['http://127.0.0.1:1']\nretries = 2\n"
    )
    s = settings_of(["-c", str(toml)])
    assert s.mount == [Mount("/api", "a:b", "wsgi"), Mount("/", "c:make", "auto", True)]
    assert s.proxy == [ProxyRoute("/up", ("http://127.0.0.1:1",), {"retries": 2})]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("workers = 'many'\n", "workers", "expected"),
        ("nonsense = 1\n", "nonsense", "unknown setting"),
        ("keep_alive = true\n", "keep_alive", "expected"),
        ("log_level = 'loud'\n", "log_level", "expected one of"),
        ("[[mount]]\nprefix = 'api'\napp = 'a:b'\n", "mount", "starts with '/'"),
        ("[[mount]]\nprefix = '/a'\n", "mount", "needs app"),
        ("[[mount]]\napp = 'a:b'\ncolour = 'red'\n", "mount", "unknown key"),
        ("[[proxy]]\nprefix = '/a'\nupstreams = ['ftp://x']\n", "proxy", "http://"),
        ("bind = [1]\n", "bind", "list of strings"),
        ("this is not toml", "", "not valid TOML"),
    ],
)
def test_file_errors_name_the_key(tmp_path: Path, text: str, where: str, problem: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as caught:
        settings_of(["-c", str(toml)])
    assert where in caught.value.where
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("argv", "environ", "where"),
    [
        (["m:a", "--graceful-timeout", "soon"], {}, "--graceful-timeout"),
        (["m:a", "--mount", "api"], {}, "--mount"),
        (["m:a"], {"THOR_BACKLOG": "-1"}, "THOR_BACKLOG"),
        (["m:a"], {"WEB_CONCURRENCY": "x"}, "WEB_CONCURRENCY"),
        (["m:a", "--mount", "/=b:c"], {}, "mount"),  # '/' twice
        ([], {}, "app"),  # nothing to serve
        (["m:a", "--certfile", "c.pem"], {}, "certfile"),  # without --keyfile
        (["m:a", "--root-path", "/x/"], {}, "root_path"),
        (["m:a", "-w", "0"], {}, "workers"),
    ],
)
def test_errors_name_the_flag_or_variable(
    argv: list[str], environ: dict[str, str], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(argv, environ)
    assert where in caught.value.where


def test_print_config_with_nested_proxy_options(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text(
        "[[proxy]]\nprefix = '/up'\nupstreams = ['http://127.0.0.1:1']\n"
        "health = { path = '/h', interval = 2.5 }\nheaders = { }\n"
    )
    s = settings_of(["-c", str(toml)])
    again = tmp_path / "again.toml"
    again.write_text(config.to_toml(s))
    assert settings_of(["-c", str(again)]) == s
    assert s.proxy[0].options == {"health": {"path": "/h", "interval": 2.5}, "headers": {}}


def test_print_config_reads_back(tmp_path: Path) -> None:
    s = settings_of(
        ["m:a", "-b", "[::1]:1", "--mount", "/x=y:z", "--proxy", "/p=http://127.0.0.1:9,http://h:1"]
    )
    s.access_logformat = '%(h)s "%(r)s" \\ \t'
    toml = tmp_path / "out.toml"
    toml.write_text(config.to_toml(s))
    assert settings_of(["-c", str(toml)]) == s


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "gateway.md").read_text()
    for name, option, _ in config.options():
        assert re.search(rf"`{name}`", docs), f"docs/gateway.md lacks the key {name}"
        for flag in option.flags:
            assert f"`{flag}`" in docs, f"docs/gateway.md lacks the flag {flag}"
    assert config.docs_table() in docs, "docs/gateway.md's table is stale: paste docs_table()"


def test_every_flag_reads_an_environment_variable() -> None:
    for name, option, default in config.options():
        route_kinds = (config.Kind.MOUNTS, config.Kind.PROXIES, config.Kind.STATICS)
        if option.kind in (*route_kinds, config.Kind.BINDS):
            continue
        sample = {
            config.Kind.BOOL: "false" if default is True else "true",
            config.Kind.CHOICE: option.choices[-1] if option.choices else "",
            config.Kind.LIST: "1.2.3.4",
        }.get(option.kind, "7")
        values = config.from_environment({f"THOR_{name.upper()}": sample})
        assert name in values, name
        assert values[name] != default or option.kind is config.Kind.STR, name
