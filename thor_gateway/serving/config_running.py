"""The settings of the "Processes", "Limits and timeouts" and "Operations" sections.

Declared here, gathered into :class:`~thor_gateway.serving.config.Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thor_gateway.serving.config_values import (
    LOG_LEVELS,
    Bind,
    Kind,
    default_allow_ips,
    meta,
    opt,
)

__all__ = ["LimitSettings", "OperationSettings", "ProcessSettings"]


def _ws(default: Any, flag: str, kind: Kind, text: str) -> Any:
    return opt(default, flag, help=f"WebSocket: {text}", kind=kind, section="Limits and timeouts")


@dataclass
class ProcessSettings:
    """Workers, threads, reloading and the process around the apps."""

    workers: int = opt(
        1,
        "-w",
        "--workers",
        help="Worker processes sharing the listening sockets.",
        kind=Kind.INT,
        env=("WEB_CONCURRENCY",),
        section="Processes",
    )

    threads: int = opt(
        10,
        "--threads",
        help="Threads per worker running WSGI apps.",
        kind=Kind.INT,
        section="Processes",
    )

    max_queue: int = opt(
        100,
        "--max-queue",
        help="WSGI requests waiting for a thread before new ones get 503.",
        kind=Kind.INT,
        section="Processes",
    )

    max_requests: int = opt(
        0,
        "--max-requests",
        help="Recycle a worker after this many requests (0: never).",
        kind=Kind.INT,
        section="Processes",
    )

    max_requests_jitter: int = opt(
        0,
        "--max-requests-jitter",
        help="Add a random 0..N to --max-requests per worker, so they do not recycle together.",
        kind=Kind.INT,
        section="Processes",
    )

    preload: bool = opt(
        False,
        "--preload",
        help="Import the apps once in the master, before forking the workers (faster starts, "
        "shared memory); then SIGHUP restarts workers on the code already loaded. Without it, "
        "each worker imports the apps, so SIGHUP deploys the code on disk.",
        kind=Kind.BOOL,
        section="Processes",
    )

    graceful_timeout: float = opt(
        30.0,
        "--graceful-timeout",
        help="On SIGTERM/SIGINT, how long in-flight requests may take before being cut.",
        kind=Kind.SECONDS,
        section="Processes",
    )

    gc_threshold: int = opt(
        10000,
        "--gc-threshold",
        help="The garbage collector's first threshold while serving (Python's is 700), "
        "and what startup built is frozen; 0: leave the collector alone.",
        kind=Kind.INT,
        section="Processes",
    )

    reload: bool = opt(
        False,
        "--reload",
        help="Development: restart when a .py file under the app's directory changes.",
        kind=Kind.BOOL,
        section="Processes",
    )

    reload_dir: list[str] = field(
        default_factory=list,
        metadata=meta(
            "--reload-dir",
            help="With --reload, watch these directories instead of the apps' (repeatable).",
            kind=Kind.LIST,
            metavar="DIR",
            section="Processes",
        ),
    )

    reload_include: list[str] = field(
        default_factory=list,
        metadata=meta(
            "--reload-include",
            help="With --reload, also watch files matching these globs (repeatable; *.py always).",
            kind=Kind.LIST,
            metavar="GLOB",
            section="Processes",
        ),
    )

    timeout: float = opt(
        30.0,
        "-t",
        "--timeout",
        help="Kill and replace a worker whose loop is silent this long (workers only; 0: never).",
        kind=Kind.SECONDS,
        section="Processes",
    )

    workers_max_rss: int = opt(
        0,
        "--workers-max-rss",
        help="Recycle a worker whose resident memory exceeds this many MiB (0: never).",
        kind=Kind.INT,
        metavar="MIB",
        section="Processes",
    )

    pid: str | None = opt(
        None,
        "-p",
        "--pid",
        help="Write the main process's id to this file (removed at exit).",
        kind=Kind.PATH,
        metavar="FILE",
        section="Processes",
    )

    user: str | None = opt(
        None,
        "-u",
        "--user",
        help="After opening the sockets, switch to this user (name or id); needs root.",
        kind=Kind.STR,
        section="Processes",
    )

    group: str | None = opt(
        None,
        "-g",
        "--group",
        help="After opening the sockets, switch to this group (name or id); needs root.",
        kind=Kind.STR,
        section="Processes",
    )

    umask: str | None = opt(
        None,
        "-m",
        "--umask",
        help="File mode creation mask, in octal (e.g. 027), set before anything is created.",
        kind=Kind.STR,
        metavar="OCTAL",
        section="Processes",
    )


@dataclass
class LimitSettings:
    """Limits and timeouts of connections and requests."""

    keep_alive: float = opt(
        5.0,
        "--keep-alive",
        help="Close a keep-alive connection idle this long.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )

    header_timeout: float = opt(
        10.0,
        "--header-timeout",
        help="Time allowed to receive a request's header section (slowloris).",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )

    body_timeout: float = opt(
        30.0,
        "--body-timeout",
        help="Time allowed without progress while receiving a request body.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )

    write_timeout: float = opt(
        30.0,
        "--write-timeout",
        help="Time allowed without progress while a client does not read the response.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )

    limit_request_line: int = opt(
        8190,
        "--limit-request-line",
        help="Longest request line, in bytes (414 beyond).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )

    limit_request_fields: int = opt(
        100,
        "--limit-request-fields",
        help="Most header fields in a request (431 beyond).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )

    limit_request_field_size: int = opt(
        32768,
        "--limit-request-field-size",
        help="Largest header section, in bytes, so also the largest field (431 beyond).",
        kind=Kind.SIZE,
        section="Limits and timeouts",
    )

    max_body_size: int = opt(
        0,
        "--max-body-size",
        help="Largest request body (413 beyond, before it is read); 0: no limit. "
        "Accepts k, m, g suffixes.",
        kind=Kind.SIZE,
        section="Limits and timeouts",
    )

    max_connections: int = opt(
        0,
        "--max-connections",
        help="Most open connections per worker (0: no limit).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )

    limit_concurrency: int = opt(
        0,
        "--limit-concurrency",
        help="Most requests in progress per worker; beyond it, 503 (0: no limit).",
        kind=Kind.INT,
        section="Limits and timeouts",
    )

    request_timeout: float = opt(
        0.0,
        "--request-timeout",
        help="Deadline of a request to an app: 504, or the started response cut (0: none).",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )
    wsgi_input: str = opt(
        "buffered",
        "--wsgi-input",
        help="How a WSGI app gets a request body: buffered (received whole on the event loop "
        "before the app runs, so a slow upload never holds a thread) or streamed (read "
        "as it arrives, in the app's thread).",
        kind=Kind.CHOICE,
        choices=("buffered", "streamed"),
        section="Limits and timeouts",
    )
    wsgi_input_memory: int = opt(
        1024 * 1024,
        "--wsgi-input-memory",
        help="A buffered WSGI request body is kept in memory up to this size, then in a "
        "temporary file (bounded by --max-body-size).",
        kind=Kind.SIZE,
        section="Limits and timeouts",
    )
    min_body_rate: int = opt(
        240,
        "--min-body-rate",
        help="Cut (408) a request body arriving slower than this many bytes per second, "
        "measured over each --min-rate-window; 0: off.",
        kind=Kind.INT,
        section="Limits and timeouts",
    )
    min_rate_window: float = opt(
        5.0,
        "--min-rate-window",
        help="The window over which minimum data rates are measured; the first one is the "
        "grace period.",
        kind=Kind.SECONDS,
        section="Limits and timeouts",
    )
    min_response_rate: int = opt(
        240,
        "--min-response-rate",
        help="Cut (reset) a client that takes its response slower than this many bytes per "
        "second while the server's write buffer or the kernel's send queue holds some of it, "
        "over each --min-rate-window; 0: off.",
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


@dataclass
class OperationSettings:
    """Logs, metrics, health paths and trusted proxies."""

    forwarded_allow_ips: list[str] = field(
        default_factory=default_allow_ips,
        metadata=meta(
            "--forwarded-allow-ips",
            help="Peers whose Forwarded / X-Forwarded-* headers are trusted: IPs, CIDRs, or '*'.",
            kind=Kind.LIST,
            env=("FORWARDED_ALLOW_IPS",),
            metavar="IPS",
            section="Operations",
        ),
    )

    access_logfile: str | None = opt(
        None,
        "--access-logfile",
        help="Write the access log to this file ('-': standard output). Off by default.",
        kind=Kind.PATH,
        metavar="PATH",
        section="Operations",
    )

    access_logformat: str = opt(
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        "--access-logformat",
        help="Access log line, with gunicorn's atoms (see 'Access log').",
        kind=Kind.STR,
        metavar="FORMAT",
        section="Operations",
    )

    log_level: str = opt(
        "info",
        "--log-level",
        help="Error log level.",
        kind=Kind.CHOICE,
        choices=LOG_LEVELS,
        section="Operations",
    )

    log_format: str = opt(
        "text",
        "--log-format",
        help="Error and access log format: text, or json (one object per line).",
        kind=Kind.CHOICE,
        choices=("text", "json"),
        section="Operations",
    )

    metrics_bind: Bind | None = field(
        default=None,
        metadata=meta(
            "--metrics-bind",
            help=(
                "Serve /metrics (Prometheus text format), the /status page, health and"
                " readiness on this address."
            ),
            kind=Kind.BINDS,
            metavar="ADDRESS",
            section="Operations",
        ),
    )

    health_path: str = opt(
        "/healthz",
        "--health-path",
        help="Liveness endpoint: 200 while the process runs ('' to disable).",
        kind=Kind.STR,
        metavar="PATH",
        section="Operations",
    )

    ready_path: str = opt(
        "/readyz",
        "--ready-path",
        help="Readiness endpoint: 200 when serving, 503 while draining ('' to disable).",
        kind=Kind.STR,
        metavar="PATH",
        section="Operations",
    )

    proxy_headers: bool = opt(
        True,
        "--proxy-headers",
        help="Believe --forwarded-allow-ips peers' proxy headers (--no-proxy-headers: nobody's).",
        kind=Kind.BOOL,
        section="Operations",
    )

    access_log: bool | None = opt(
        None,
        "--access-log",
        help="--no-access-log: none, whatever --access-logfile says; --access-log: on stdout.",
        kind=Kind.BOOL,
        section="Operations",
    )

    error_logfile: str | None = opt(
        None,
        "--error-logfile",
        "--log-file",
        help="Write the error log to this file ('-': standard error, the default).",
        kind=Kind.PATH,
        metavar="PATH",
        section="Operations",
    )

    log_config: str | None = opt(
        None,
        "--log-config",
        help="Configure logging from a file: dictConfig in .json or .toml, fileConfig in .ini.",
        kind=Kind.PATH,
        metavar="PATH",
        section="Operations",
    )
    log_repeat_limit: int = opt(
        10,
        "--log-repeat-limit",
        help="Alike error-log lines written per 10 s; the rest are counted in one line "
        "('[repeated N more times]'). 0: write every line.",
        kind=Kind.INT,
        section="Operations",
    )
    proxy_protocol: bool = opt(
        False,
        "--proxy-protocol",
        help="Each connection to the HTTP listeners starts with a PROXY protocol header "
        "(HAProxy's v1 or v2, read before TLS) naming the client; only --forwarded-allow-ips "
        "peers may connect. See 'PROXY protocol'.",
        kind=Kind.BOOL,
        section="Operations",
    )
