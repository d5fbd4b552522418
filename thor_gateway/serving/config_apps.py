"""The settings of the "Apps" and "Serving" sections: what is served, and where.

Declared here, gathered into :class:`~thor_gateway.serving.config.Settings` (see that
module for how one declaration gives a flag, a TOML key, an environment variable and a row
of the docs table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thor_gateway.serving.config_values import (
    INTERFACES,
    Bind,
    Kind,
    Mount,
    ProxyRoute,
    StaticRoute,
    meta,
    opt,
)

__all__ = ["AppSettings", "ServingSettings"]


@dataclass
class AppSettings:
    """What to serve: apps, proxies, static folders, and how apps are loaded."""

    app: str | None = opt(
        None,
        help="The app to serve at '/': module:attr or module:factory(); same as --mount /=APP.",
        kind=Kind.STR,
        metavar="MODULE:APP",
        section="Apps",
    )

    mount: list[Mount] = field(
        default_factory=list,
        metadata=meta(
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
        metadata=meta(
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
        metadata=meta(
            "--static",
            help="Serve the files of a folder under a path prefix (repeatable): /prefix=FOLDER. "
            "TOML [[static]] tables may add cache_control, follow_symlinks, index, precompressed.",
            kind=Kind.STATICS,
            metavar="/PREFIX=FOLDER",
            section="Apps",
        ),
    )

    upstream_connect_timeout: float = opt(
        3.0,
        "--upstream-connect-timeout",
        help="Seconds to connect to a proxy upstream (a [[proxy]] connect_timeout overrides it).",
        kind=Kind.SECONDS,
        section="Apps",
    )

    upstream_timeout: float = opt(
        30.0,
        "--upstream-timeout",
        help="Seconds without progress from a proxy upstream before 504 "
        "(a [[proxy]] upstream_timeout overrides it).",
        kind=Kind.SECONDS,
        section="Apps",
    )

    interface: str = opt(
        "auto",
        "--interface",
        help="The app's interface; auto detects it (see 'Interface detection').",
        kind=Kind.CHOICE,
        choices=INTERFACES,
        section="Apps",
    )

    factory: bool = opt(
        False,
        "--factory",
        help="Call the named object with no arguments to get the app.",
        kind=Kind.BOOL,
        section="Apps",
    )

    lifespan: str = opt(
        "auto",
        "--lifespan",
        help="ASGI lifespan protocol: auto (use it if the app supports it), on, off.",
        kind=Kind.CHOICE,
        choices=("auto", "on", "off"),
        section="Apps",
    )

    root_path: str = opt(
        "",
        "--root-path",
        help="A prefix a front proxy removed; prepended to every SCRIPT_NAME / root_path.",
        kind=Kind.STR,
        metavar="PATH",
        section="Apps",
    )

    pythonpath: list[str] = field(
        default_factory=list,
        metadata=meta(
            "--pythonpath",
            "--app-dir",
            help="Put these directories first on sys.path before importing the apps (repeatable).",
            kind=Kind.LIST,
            metavar="DIR",
            section="Apps",
        ),
    )

    chdir: str | None = opt(
        None,
        "--chdir",
        help="Change to this directory before the apps are imported.",
        kind=Kind.PATH,
        metavar="DIR",
        section="Apps",
    )

    env_file: str | None = opt(
        None,
        "--env-file",
        help="Load KEY=VALUE lines into the environment before importing the apps (set ones win).",
        kind=Kind.PATH,
        metavar="PATH",
        section="Apps",
    )
    cache: bool = opt(
        False,
        "--cache",
        help="Cache the responses of every proxy route (RFC 9111, shared; see docs/cache.md). "
        "A [[proxy]] table's cache = true or { max_size = ..., ... } does it per route.",
        kind=Kind.BOOL,
        section="Apps",
    )
    cache_size: int = opt(
        64 << 20,
        "--cache-size",
        help="Bytes each route's memory cache may hold (a [[proxy]] cache.max_size overrides it).",
        kind=Kind.SIZE,
        section="Apps",
    )
    cache_dir: str | None = opt(
        None,
        "--cache-dir",
        help="Keep cached responses on disk under this folder (one sub-folder per route), "
        "shared by the workers and kept across restarts; memory when unset.",
        kind=Kind.PATH,
        metavar="DIR",
        section="Apps",
    )


@dataclass
class ServingSettings:
    """Where to listen, TLS, and the fields the server adds."""

    bind: list[Bind] = field(
        default_factory=list,
        metadata=meta(
            "-b",
            "--bind",
            help="Listen on HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (repeatable). "
            "Default 127.0.0.1:8000 when no address is given.",
            kind=Kind.BINDS,
            metavar="ADDRESS",
        ),
    )

    host: str | None = opt(
        None, "--host", help="Listen on this host (with --port; default port 8000).", kind=Kind.STR
    )

    port: int | None = opt(
        None, "--port", help="Listen on this port (with --host; default 127.0.0.1).", kind=Kind.INT
    )

    uds: str | None = opt(
        None, "--uds", help="Listen on this UNIX socket path.", kind=Kind.PATH, metavar="PATH"
    )

    fd: int | None = opt(
        None, "--fd", help="Listen on this inherited socket descriptor.", kind=Kind.INT
    )

    backlog: int = opt(1024, "--backlog", help="Listen queue length.", kind=Kind.INT)

    certfile: str | None = opt(
        None,
        "--certfile",
        "--ssl-certfile",
        help="TLS certificate chain (PEM); serve HTTPS on every bind.",
        kind=Kind.PATH,
        metavar="PATH",
    )

    keyfile: str | None = opt(
        None,
        "--keyfile",
        "--ssl-keyfile",
        help="TLS private key (PEM).",
        kind=Kind.PATH,
        metavar="PATH",
    )

    ssl_keyfile_password: str | None = opt(
        None,
        "--ssl-keyfile-password",
        "--keyfile-password",
        help="Password of an encrypted --keyfile.",
        kind=Kind.STR,
        metavar="PASSWORD",
    )

    ssl_ca_certs: str | None = opt(
        None,
        "--ssl-ca-certs",
        "--ca-certs",
        help="CA certificates (PEM) that client certificates are verified against.",
        kind=Kind.PATH,
        metavar="PATH",
    )

    ssl_cert_reqs: str = opt(
        "optional",
        "--ssl-cert-reqs",
        "--cert-reqs",
        help="With --ssl-ca-certs: none, optional or required client certificates (or 0, 1, 2).",
        kind=Kind.CHOICE,
        choices=("none", "optional", "required", "0", "1", "2"),
    )

    server_header: bool = opt(
        True, "--server-header", help="Add 'Server: thor' when a response has none.", kind=Kind.BOOL
    )

    date_header: bool = opt(
        True, "--date-header", help="Add a Date field when a response has none.", kind=Kind.BOOL
    )
    http2: bool = opt(
        True,
        "--http2",
        help="Offer HTTP/2 over TLS by ALPN (h2, then http/1.1); --no-http2: HTTP/1.1 only.",
        kind=Kind.BOOL,
    )
    h2c: bool = opt(
        True,
        "--h2c",
        help="Serve cleartext HTTP/2: prior knowledge and Upgrade: h2c; --no-h2c: neither.",
        kind=Kind.BOOL,
    )
