"""Settings: one dataclass from which every other surface derives.

Theory of operation.  :class:`Settings` declares each setting once, as a field
whose metadata is an :class:`Option` (its flags, kind, help, extra environment
names).  From that single declaration come:

- the command-line flags (:mod:`thor_gateway.serving.cli` walks the fields),
- the TOML keys (the field name: ``graceful_timeout``; ``graceful-timeout``
  is accepted too), including the ``[[mount]]``, ``[[proxy]]`` and ``[[static]]`` tables,
- the environment variables (``THOR_`` + the upper-cased field name, plus the
  conventional names some settings also read: ``WEB_CONCURRENCY``,
  ``FORWARDED_ALLOW_IPS``),
- the reference table of ``docs/gateway.md`` (:func:`docs_table`).

Waitress declares its settings in three files that must be kept in step; here
there is one place, and a test checks that the docs list every setting.

Sources are layered, each one overriding the ones before it: built-in
defaults < config file < environment < command line.  Every value, whatever
its source, is parsed and checked by the same function of its :class:`Kind`
(:mod:`thor_gateway.serving.config_values`); a bad value raises :class:`ConfigError`
naming the flag, key or variable.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thor_gateway.serving.config_values import (
    INTERFACES,
    LOG_LEVELS,
    Bind,
    ConfigError,
    Kind,
    Mount,
    Option,
    ProxyRoute,
    StaticRoute,
    parse_bind,
    toml_value,
    value_from_text,
    value_from_toml,
)

__all__ = [
    "Bind",
    "ConfigError",
    "Kind",
    "Mount",
    "Option",
    "ProxyRoute",
    "Settings",
    "StaticRoute",
    "docs_table",
    "env_names",
    "from_sources",
    "load_toml",
    "options",
    "parse_bind",
    "to_toml",
    "value_from_text",
]


def _meta(*flags: str, help: str, kind: Kind, **more: Any) -> dict[str, Option]:
    return {"option": Option(flags, help, kind, **more)}


def _opt(default: Any, *flags: str, help: str, kind: Kind, **more: Any) -> Any:
    """A field with an immutable default (lists go through ``field`` and :func:`_meta`)."""
    return field(default=default, metadata=_meta(*flags, help=help, kind=kind, **more))


def _ws(default: Any, flag: str, kind: Kind, text: str) -> Any:
    return _opt(default, flag, help=f"WebSocket: {text}", kind=kind, section="Limits and timeouts")


def _default_allow_ips() -> list[str]:
    return ["127.0.0.1", "::1"]


@dataclass(slots=True)
class Settings:
    """Every setting of thor-gateway; see ``docs/gateway.md`` for the table derived from it."""

    app: str | None = _opt(
        None,
        help="The app to serve at '/': module:attr or module:factory(); same as --mount /=APP.",
        kind=Kind.STR,
        metavar="MODULE:APP",
        section="Apps",
    )
    mount: list[Mount] = field(
        default_factory=list,
        metadata=_meta(
            "--mount",
            help="Serve an app under a path prefix (repeatable): /prefix=module:app. "
            "The longest matching prefix wins; the app sees it as SCRIPT_NAME / root_path.",
            kind=Kind.MOUNTS,
            metavar="/PREFIX=MODULE:APP",
            section="Apps",
        ),
    )
    proxy: list[ProxyRoute] = field(
        default_factory=list,
        metadata=_meta(
            "--proxy",
            help="Reverse-proxy a path prefix to upstream URLs (repeatable): /prefix=URL[,URL...]. "
            "TOML [[proxy]] tables may also give upstreams as tables "
            "({ url = URL, weight = N, max_connections = N }) and carry more keys for the proxy.",
            kind=Kind.PROXIES,
            metavar="/PREFIX=URL[,URL]",
            section="Apps",
        ),
    )
    static: list[StaticRoute] = field(
        default_factory=list,
        metadata=_meta(
            "--static",
            help="Serve the files of a folder under a path prefix (repeatable): /prefix=FOLDER. "
            "TOML [[static]] tables may add cache_control, follow_symlinks, index, precompressed.",
            kind=Kind.STATICS,
            metavar="/PREFIX=FOLDER",
            section="Apps",
        ),
    )
    upstream_connect_timeout: float = _opt(
        3.0,
        "--upstream-connect-timeout",
        help="Seconds to connect to a proxy upstream (a [[proxy]] connect_timeout overrides it).",
        kind=Kind.SECONDS,
        section="Apps",
    )
    upstream_timeout: float = _opt(
        30.0,
        "--upstream-timeout",
        help="Seconds without progress from a proxy upstream before 504 "
        "(a [[proxy]] upstream_timeout overrides it).",
        kind=Kind.SECONDS,
        section="Apps",
    )
    interface: str = _opt(
        "auto",
        "--interface",
        help="The app's interface; auto detects it (see 'Interface detection').",
        kind=Kind.CHOICE,
        choices=INTERFACES,
        section="Apps",
    )
    factory: bool = _opt(
        False,
        "--factory",
        help="Call the named object with no arguments to get the app.",
        kind=Kind.BOOL,
        section="Apps",
    )
    lifespan: str = _opt(
        "auto",
        "--lifespan",
        help="ASGI lifespan protocol: auto (use it if the app supports it), on, off.",
        kind=Kind.CHOICE,
        choices=("auto", "on", "off"),
        section="Apps",
    )
    root_path: str = _opt(
        "",
        "--root-path",
        help="A prefix a front proxy removed; prepended to every SCRIPT_NAME / root_path.",
        kind=Kind.STR,
        metavar="PATH",
        section="Apps",
    )
    bind: list[Bind] = field(
        default_factory=list,
        metadata=_meta(
            "-b",
            "--bind",
            help="Listen on HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (repeatable). "
            "Default 127.0.0.1:8000 when no address is given.",
            kind=Kind.BINDS,
            metavar="ADDRESS",
        ),
    )
    host: str | None = _opt(
        None, "--host", help="Listen on this host (with --port; default port 8000).", kind=Kind.STR
    )
    port: int | None = _opt(
        None, "--port", help="Listen on this port (with --host; default 127.0.0.1).", kind=Kind.INT
    )
    uds: str | None = _opt(
        None, "--uds", help="Listen on this UNIX socket path.", kind=Kind.PATH, metavar="PATH"
    )
    fd: int | None = _opt(
        None, "--fd", help="Listen on this inherited socket descriptor.", kind=Kind.INT
    )
    backlog: int = _opt(1024, "--backlog", help="Listen queue length.", kind=Kind.INT)
    certfile: str | None = _opt(
        None,
        "--certfile",
        "--ssl-certfile",
        help="TLS certificate chain (PEM); serve HTTPS on every bind.",
        kind=Kind.PATH,
        metavar="PATH",
    )
    keyfile: str | None = _opt(
        None,
        "--keyfile",
        "--ssl-keyfile",
        help="TLS private key (PEM).",
        kind=Kind.PATH,
        metavar="PATH",
    )
    workers: int = _opt(
        1,
        "-w",
        "--workers",
        help="Worker processes sharing the listening sockets.",
        kind=Kind.INT,
        env=("WEB_CONCURRENCY",),
        section="Processes",
    )
    threads: int = _opt(
        10,
        "--threads",
        help="Threads per worker running WSGI apps.",
        kind=Kind.INT,
        section="Processes",
    )
    max_queue: int = _opt(
        100,
        "--max-queue",
        help="WSGI requests waiting for a thread before new ones get 503.",
        kind=Kind.INT,
        section="Processes",
    )
    max_requests: int = _opt(
        0,
        "--max-requests",
        help="Recycle a worker after this many requests (0: never).",
        kind=Kind.INT,
        section="Processes",
    )
    max_requests_jitter: int = _opt(
        0,
        "--max-requests-jitter",
        help="Add a random 0..N to --max-requests per worker, so they do not recycle together.",
        kind=Kind.INT,
        section="Processes",
    )
    graceful_timeout: float = _opt(
        30.0,
        "--graceful-timeout",
        help="On SIGTERM/SIGINT, how long in-flight requests may take before being cut.",
        kind=Kind.SECONDS,
        section="Processes",
    )
    gc_threshold: int = _opt(
        10000,
        "--gc-threshold",
        help="The garbage collector's first threshold while serving (Python's is 700), "
        "and what startup built is frozen; 0: leave the collector alone.",
        kind=Kind.INT,
        section="Processes",
    )
    reload: bool = _opt(
        False,
        "--reload",
        help="Development: restart when a .py file under the app's directory changes.",
        kind=Kind.BOOL,
        section="Processes",
    )
    keep_alive: float = _opt(
        5.0,
        "--keep-alive",
        help="Close a keep-alive connection idle this long.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )
    header_timeout: float = _opt(
        10.0,
        "--header-timeout",
        help="Time allowed to receive a request's header section (slowloris).",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )
    body_timeout: float = _opt(
        30.0,
        "--body-timeout",
        help="Time allowed without progress while receiving a request body.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )
    write_timeout: float = _opt(
        30.0,
        "--write-timeout",
        help="Time allowed without progress while a client does not read the response.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )
    limit_request_line: int = _opt(
        8190,
        "--limit-request-line",
        help="Longest request line, in bytes (414 beyond).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )
    limit_request_fields: int = _opt(
        100,
        "--limit-request-fields",
        help="Most header fields in a request (431 beyond).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )
    limit_request_field_size: int = _opt(
        32768,
        "--limit-request-field-size",
        help="Largest header section, in bytes, so also the largest field (431 beyond).",
        kind=Kind.SIZE,
        section="Limits and timeouts",
    )
    max_body_size: int = _opt(
        0,
        "--max-body-size",
        help="Largest request body (413 beyond, before it is read); 0: no limit. "
        "Accepts k, m, g suffixes.",
        kind=Kind.SIZE,
        section="Limits and timeouts",
    )
    max_connections: int = _opt(
        0,
        "--max-connections",
        help="Most open connections per worker (0: no limit).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )
    limit_concurrency: int = _opt(
        0,
        "--limit-concurrency",
        help="Most requests in progress per worker; beyond it, 503 (0: no limit).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )
    # WebSocket (uvicorn's spellings); docs/gateway.md "WebSocket" says more.
    ws_max_size: int = _ws(16 * 1024 * 1024, "--ws-max-size", Kind.SIZE, "Largest message: 1009.")
    ws_ping_interval: float = _ws(
        20.0, "--ws-ping-interval", Kind.SECONDS, "Seconds between keepalive pings (0: none)."
    )
    ws_ping_timeout: float = _ws(
        20.0, "--ws-ping-timeout", Kind.SECONDS, "Seconds for a ping's pong, then 1011 (0: none)."
    )
    ws_per_message_deflate: bool = _ws(
        True, "--ws-per-message-deflate", Kind.BOOL, "Accept permessage-deflate (RFC 7692)."
    )
    ws_close_timeout: float = _ws(
        10.0, "--ws-close-timeout", Kind.SECONDS, "Seconds for the closing handshake."
    )
    forwarded_allow_ips: list[str] = field(
        default_factory=_default_allow_ips,
        metadata=_meta(
            "--forwarded-allow-ips",
            help="Peers whose Forwarded / X-Forwarded-* headers are trusted: IPs, CIDRs, or '*'.",
            kind=Kind.LIST,
            env=("FORWARDED_ALLOW_IPS",),
            metavar="IPS",
            section="Operations",
        ),
    )
    access_logfile: str | None = _opt(
        None,
        "--access-logfile",
        help="Write the access log to this file ('-': standard output). Off by default.",
        kind=Kind.PATH,
        metavar="PATH",
        section="Operations",
    )
    access_logformat: str = _opt(
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        "--access-logformat",
        help="Access log line, with gunicorn's atoms (see 'Access log').",
        kind=Kind.STR,
        metavar="FORMAT",
        section="Operations",
    )
    log_level: str = _opt(
        "info",
        "--log-level",
        help="Error log level.",
        kind=Kind.CHOICE,
        choices=LOG_LEVELS,
        section="Operations",
    )
    log_format: str = _opt(
        "text",
        "--log-format",
        help="Error and access log format: text, or json (one object per line).",
        kind=Kind.CHOICE,
        choices=("text", "json"),
        section="Operations",
    )
    metrics_bind: Bind | None = field(
        default=None,
        metadata=_meta(
            "--metrics-bind",
            help="Serve /metrics (Prometheus text format), health and readiness on this address.",
            kind=Kind.BINDS,
            metavar="ADDRESS",
            section="Operations",
        ),
    )
    health_path: str = _opt(
        "/healthz",
        "--health-path",
        help="Liveness endpoint: 200 while the process runs ('' to disable).",
        kind=Kind.STR,
        metavar="PATH",
        section="Operations",
    )
    ready_path: str = _opt(
        "/readyz",
        "--ready-path",
        help="Readiness endpoint: 200 when serving, 503 while draining ('' to disable).",
        kind=Kind.STR,
        metavar="PATH",
        section="Operations",
    )

    # ------------------------------------------------------------ derived

    def listen_addresses(self) -> list[Bind]:
        """Every address: --bind, --host/--port, --uds, --fd; default 127.0.0.1:8000."""
        binds = list(self.bind)
        if self.host is not None or self.port is not None:
            host = self.host if self.host is not None else "127.0.0.1"
            binds.append(Bind("tcp", host=host, port=self.port if self.port is not None else 8000))
        if self.uds is not None:
            binds.append(Bind("unix", path=self.uds))
        if self.fd is not None:
            binds.append(Bind("fd", fd=self.fd))
        return binds or [Bind("tcp", host="127.0.0.1", port=8000)]

    def all_mounts(self) -> list[Mount]:
        """The mounts, the positional app included (at '/')."""
        mounts = list(self.mount)
        if self.app:
            mounts.append(Mount("/", self.app, self.interface, self.factory))
        return mounts

    def check(self) -> None:
        """Cross-setting checks; raises :class:`ConfigError`."""
        prefixes = [m.prefix for m in self.all_mounts()] + [p.prefix for p in self.proxy]
        prefixes += [s.prefix for s in self.static]
        for prefix in prefixes:
            if prefixes.count(prefix) > 1:
                raise ConfigError("mount", f"the prefix {prefix!r} is mounted twice")
        if not prefixes:
            raise ConfigError(
                "app", "nothing to serve: give MODULE:APP, --mount, --proxy or --static"
            )
        for route in self.static:
            if not os.path.isdir(route.path):
                raise ConfigError("static", f"{route.path!r} is not a folder")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("certfile", "--certfile and --keyfile go together")
        if self.workers < 1:
            raise ConfigError("workers", "must be at least 1")
        if self.threads < 1:
            raise ConfigError("threads", "must be at least 1")
        for name in ("health_path", "ready_path"):
            value = getattr(self, name)
            if value and not value.startswith("/"):
                raise ConfigError(name, f"must start with '/': {value!r}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError("root_path", "must start with '/' and not end with '/'")


def options() -> list[tuple[str, Option, Any]]:
    """(name, option, default) for every setting, in declaration order."""
    result = []
    for f in dataclasses.fields(Settings):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        result.append((f.name, f.metadata["option"], default))
    return result


def env_names(name: str, option: Option) -> tuple[str, ...]:
    """The environment variables of a setting, strongest first."""
    return ("THOR_" + name.upper(), *option.env)


# ------------------------------------------------------------------ sources


def load_toml(path: str) -> dict[str, Any]:
    """Read a config file into {field name: value}; raises :class:`ConfigError`."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"--config {path}", error.strerror or str(error)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"--config {path}", f"not valid TOML: {error}") from None
    known = {name: option for name, option, _ in options()}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: {key}", "unknown setting")
        try:
            values[name] = value_from_toml(name, known[name], value)
        except ValueError as error:
            raise ConfigError(f"{path}: {key}", str(error)) from None
    return values


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """{field name: value} from THOR_* (and conventional) variables; raises :class:`ConfigError`."""
    values: dict[str, Any] = {}
    for name, option, _ in options():
        for variable in env_names(name, option):
            text = environ.get(variable)
            if text is None or (text == "" and option.kind is not Kind.STR):
                continue
            try:
                values[name] = value_from_text(option, text)
            except ValueError as error:
                raise ConfigError(variable, str(error)) from None
            break
    return values


def from_sources(
    file_values: Mapping[str, Any],
    env_values: Mapping[str, Any],
    cli_values: Mapping[str, Any],
) -> Settings:
    """Layer the sources (later wins) over the defaults and check the result."""
    merged = {**file_values, **env_values, **cli_values}
    settings = Settings(**merged)
    settings.check()
    return settings


# ------------------------------------------------------------ TOML, docs


def to_toml(settings: Settings) -> str:
    """The effective settings as a config file (``--print-config``); reads back equal."""
    lines: list[str] = []
    tables: list[str] = []
    for name, option, _ in options():
        value = getattr(settings, name)
        if value is None:
            continue
        if option.kind is Kind.MOUNTS:
            for mount in value:
                tables += ["", "[[mount]]", *_pairs(dataclasses.asdict(mount))]
        elif option.kind is Kind.PROXIES:
            for route in value:
                pairs = {"prefix": route.prefix, "upstreams": route.upstreams, **route.options}
                tables += ["", "[[proxy]]", *_pairs(pairs)]
        elif option.kind is Kind.STATICS:
            for route in value:
                tables += ["", "[[static]]", *_pairs(dataclasses.asdict(route))]
        else:
            lines.append(f"{name} = {toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {toml_value(value)}" for key, value in table.items()]


def docs_table() -> str:
    """The Markdown reference table of every setting (pasted into docs/gateway.md)."""
    rows = [
        "| flag | TOML key | environment | kind | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name, option, default in options():
        flags = ", ".join(f"`{f}`" for f in option.flags) or "positional `MODULE:APP`"
        shown = toml_value(default) if default not in (None, []) else "—"
        envs = ", ".join(f"`{e}`" for e in env_names(name, option))
        kind = option.kind.value
        if option.choices:
            kind = " \\| ".join(option.choices)
        text = option.help.replace("|", "\\|")
        rows.append(f"| {flags} | `{name}` | {envs} | {kind} | `{shown}` | {text} |")
    return "\n".join(rows) + "\n"
