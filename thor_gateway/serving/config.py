"""Settings: one dataclass from which every other surface derives.

Theory of operation.  :class:`Settings` declares each setting once, as a field
whose metadata is an :class:`Option` (its flags, kind, help, extra environment
names).  From that single declaration come:

- the command-line flags (:mod:`thor_gateway.serving.cli` walks the fields),
- the TOML keys (the field name: ``graceful_timeout``; ``graceful-timeout``
  is accepted too), including the ``[[mount]]`` and ``[[proxy]]`` tables,
- the environment variables (``THOR_`` + the upper-cased field name, plus the
  conventional names some settings also read: ``WEB_CONCURRENCY``,
  ``FORWARDED_ALLOW_IPS``),
- the reference table of ``docs/gateway.md``
  (:func:`~thor_gateway.serving.config_sources.docs_table`).

Waitress declares its settings in three files that must be kept in step; here
there is one place, and a test checks that the docs list every setting.

How the sources are read, layered and checked is
:mod:`thor_gateway.serving.config_sources`.
"""

from __future__ import annotations

import dataclasses
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
    parse_bind,
    value_from_text,
)

__all__ = [
    "Bind",
    "ConfigError",
    "Kind",
    "Mount",
    "Option",
    "ProxyRoute",
    "Settings",
    "env_names",
    "options",
    "parse_bind",
    "value_from_text",
]


def _meta(*flags: str, help: str, kind: Kind, **more: Any) -> dict[str, Option]:
    return {"option": Option(flags, help, kind, **more)}


def _opt(default: Any, *flags: str, help: str, kind: Kind, **more: Any) -> Any:
    """A field with an immutable default (lists go through ``field`` and :func:`_meta`)."""
    return field(default=default, metadata=_meta(*flags, help=help, kind=kind, **more))


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
    pythonpath: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "--pythonpath",
            "--app-dir",
            help="Put these directories first on sys.path before importing the apps (repeatable).",
            kind=Kind.LIST,
            metavar="DIR",
            section="Apps",
        ),
    )
    chdir: str | None = _opt(
        None,
        "--chdir",
        help="Change to this directory before the apps are imported.",
        kind=Kind.PATH,
        metavar="DIR",
        section="Apps",
    )
    env_file: str | None = _opt(
        None,
        "--env-file",
        help="Load KEY=VALUE lines into the environment before importing the apps (set ones win).",
        kind=Kind.PATH,
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
    ssl_keyfile_password: str | None = _opt(
        None,
        "--ssl-keyfile-password",
        "--keyfile-password",
        help="Password of an encrypted --keyfile.",
        kind=Kind.STR,
        metavar="PASSWORD",
    )
    ssl_ca_certs: str | None = _opt(
        None,
        "--ssl-ca-certs",
        "--ca-certs",
        help="CA certificates (PEM) that client certificates are verified against.",
        kind=Kind.PATH,
        metavar="PATH",
    )
    ssl_cert_reqs: str = _opt(
        "optional",
        "--ssl-cert-reqs",
        "--cert-reqs",
        help="With --ssl-ca-certs: none, optional or required client certificates (or 0, 1, 2).",
        kind=Kind.CHOICE,
        choices=("none", "optional", "required", "0", "1", "2"),
    )
    server_header: bool = _opt(
        True, "--server-header", help="Add 'Server: thor' when a response has none.", kind=Kind.BOOL
    )
    date_header: bool = _opt(
        True, "--date-header", help="Add a Date field when a response has none.", kind=Kind.BOOL
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
    reload_dir: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "--reload-dir",
            help="With --reload, watch these directories instead of the apps' (repeatable).",
            kind=Kind.LIST,
            metavar="DIR",
            section="Processes",
        ),
    )
    reload_include: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "--reload-include",
            help="With --reload, also watch files matching these globs (repeatable; *.py always).",
            kind=Kind.LIST,
            metavar="GLOB",
            section="Processes",
        ),
    )
    timeout: float = _opt(
        30.0,
        "-t",
        "--timeout",
        help="Kill and replace a worker whose loop is silent this long (workers only; 0: never).",
        kind=Kind.SECONDS,
        section="Processes",
    )
    workers_max_rss: int = _opt(
        0,
        "--workers-max-rss",
        help="Recycle a worker whose resident memory exceeds this many MiB (0: never).",
        kind=Kind.INT,
        metavar="MIB",
        section="Processes",
    )
    pid: str | None = _opt(
        None,
        "-p",
        "--pid",
        help="Write the main process's id to this file (removed at exit).",
        kind=Kind.PATH,
        metavar="FILE",
        section="Processes",
    )
    user: str | None = _opt(
        None,
        "-u",
        "--user",
        help="After opening the sockets, switch to this user (name or id); needs root.",
        kind=Kind.STR,
        section="Processes",
    )
    group: str | None = _opt(
        None,
        "-g",
        "--group",
        help="After opening the sockets, switch to this group (name or id); needs root.",
        kind=Kind.STR,
        section="Processes",
    )
    umask: str | None = _opt(
        None,
        "-m",
        "--umask",
        help="File mode creation mask, in octal (e.g. 027), set before anything is created.",
        kind=Kind.STR,
        metavar="OCTAL",
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
    request_timeout: float = _opt(
        0.0,
        "--request-timeout",
        help="Deadline of a request to an app: 504, or the started response cut (0: none).",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
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
    proxy_headers: bool = _opt(
        True,
        "--proxy-headers",
        help="Believe --forwarded-allow-ips peers' proxy headers (--no-proxy-headers: nobody's).",
        kind=Kind.BOOL,
        section="Operations",
    )
    access_log: bool | None = _opt(
        None,
        "--access-log",
        help="--no-access-log: none, whatever --access-logfile says; --access-log: on stdout.",
        kind=Kind.BOOL,
        section="Operations",
    )
    error_logfile: str | None = _opt(
        None,
        "--error-logfile",
        "--log-file",
        help="Write the error log to this file ('-': standard error, the default).",
        kind=Kind.PATH,
        metavar="PATH",
        section="Operations",
    )
    log_config: str | None = _opt(
        None,
        "--log-config",
        help="Configure logging from a file: dictConfig in .json or .toml, fileConfig in .ini.",
        kind=Kind.PATH,
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
