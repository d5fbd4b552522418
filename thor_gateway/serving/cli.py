"""The command line: ``thor-gateway [OPTIONS] [MODULE:APP]`` (argparse only).

Every flag comes from :mod:`thor_gateway.serving.config`; this module adds only what is
not a setting: ``-c/--config``, ``--check-config``, ``--print-config`` and
``--version``.  Flags the user did not type are absent from the parsed
namespace (``argparse.SUPPRESS``), so that they do not hide the config file
or the environment.

Exit status: 0 after a clean shutdown or a successful ``--check-config``;
2 for bad configuration (a message names the flag, key or variable), an app
that cannot be loaded, or any other error before the server is ready.  The
checks before a start are the ones ``--check-config`` runs
(:mod:`thor_gateway.serving.checks`).  Under ``--reload`` an app that cannot be
loaded does not end the server: it answers 500 with the error until fixed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import thor_gateway
from thor_gateway.serving import config, config_sources
from thor_gateway.serving.checks import check_apps, check_settings
from thor_gateway.serving.config import ConfigError, Kind, Settings
from thor_gateway.serving.loading import AppLoadError

__all__ = ["build_parser", "main", "resolve"]

PROG = "thor-gateway"
# Set by the --reload supervisor in the process it runs, so that it serves.
RELOADER_CHILD = "THOR_GATEWAY_RELOADER_CHILD"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, derived from :class:`Settings`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve WSGI, ASGI and native Thor apps (and proxies) on the Thor loop.",
        argument_default=argparse.SUPPRESS,
        epilog="Every flag also reads THOR_<NAME> from the environment; see docs/gateway.md.",
    )
    parser.add_argument("-c", "--config", metavar="FILE.toml", help="Read settings from a file.")
    parser.add_argument(
        "--check-config", action="store_true", help="Check the settings and the apps; exit."
    )
    parser.add_argument(
        "--print-config", action="store_true", help="Print the effective settings as TOML; exit."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {thor_gateway.__version__}"
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, option, default in config.options():
        group = groups.get(option.section)
        if group is None:
            group = groups[option.section] = parser.add_argument_group(option.section)
        text = option.help.replace("%", "%%")
        if default not in (None, [], "", False):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            text += f" (default: {shown})".replace("%", "%%")
        if not option.flags:
            group.add_argument(name, nargs="?", metavar=option.metavar, help=text)
        elif option.kind is Kind.BOOL:
            group.add_argument(
                *option.flags, dest=name, action=argparse.BooleanOptionalAction, help=text
            )
        else:
            repeat = option.kind in (Kind.LIST, Kind.MOUNTS, Kind.PROXIES, Kind.STATICS) or (
                option.kind is Kind.BINDS and "--bind" in option.flags
            )
            group.add_argument(
                *option.flags,
                dest=name,
                action="append" if repeat else "store",
                metavar=option.metavar or name.upper(),
                choices=option.choices or None,
                help=text,
            )
    return parser


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, option, _ in config.options():
        if not hasattr(args, name):
            continue
        raw = getattr(args, name)
        if option.kind is Kind.BOOL or raw is None:
            values[name] = raw
            continue
        where = "/".join(option.flags) if option.flags else "MODULE:APP"
        try:
            values[name] = config.value_from_text(option, raw)
        except ValueError as error:
            raise ConfigError(where, str(error) + _took_the_app(option, raw)) from None
    return values


NUMERIC = (Kind.INT, Kind.SECONDS, Kind.SIZE)
APP_SPEC = re.compile(r"[\w.]+:[\w.]+(\(.*\))?")


def _took_the_app(option: config.Option, raw: object) -> str:
    """A hint when a numeric flag missing its value took the app spec instead."""
    if option.kind in NUMERIC and isinstance(raw, str) and APP_SPEC.fullmatch(raw):
        flag = option.flags[-1]
        return f" (that looks like the app: did {flag} miss its value? {flag} N {raw})"
    return ""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``THOR_*`` variable that is no setting (a typo is otherwise silent)."""
    known = [env for name, option, _ in config.options() for env in config.env_names(name, option)]
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith("THOR_") or variable in known:
            continue
        if variable.startswith("THOR_GATEWAY_"):  # the reloader's own, to its child
            continue
        # Compared without the shared THOR_ prefix, which would make everything look close.
        names = {env.removeprefix("THOR_"): env for env in known}
        near = difflib.get_close_matches(variable.removeprefix("THOR_"), names, n=1, cutoff=0.6)
        hint = f"; did you mean {names[near[0]]}?" if near else " (docs/gateway.md lists them)"
        warnings.append(f"{PROG}: warning: {variable} is not a setting and is ignored{hint}")
    return warnings


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Settings from defaults < config file < environment < flags."""
    file_values = config_sources.load_toml(args.config) if getattr(args, "config", None) else {}
    env_values = config_sources.from_environment(environ)
    if not environ.get(RELOADER_CHILD):  # the reloader said it already
        for warning in unknown_variables(environ):
            sys.stderr.write(warning + "\n")
    settings = config_sources.from_sources(file_values, env_values, _flag_values(args))
    if environ.get(RELOADER_CHILD):
        _adopt_reloader_sockets(settings, environ)
    else:
        settings.bind = settings.bind + systemd_sockets(environ)
    return settings


def systemd_sockets(environ: Mapping[str, str]) -> list[config.Bind]:
    """Sockets passed by systemd socket activation (sd_listen_fds(3)): fd 3 onwards.

    Only when ``LISTEN_PID`` names this process: the variables may have been
    inherited from a parent they were meant for.
    """
    try:
        if int(environ.get("LISTEN_PID", "0")) != os.getpid():
            return []
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return [config.Bind("fd", fd=3 + i) for i in range(max(0, count))]


def _adopt_reloader_sockets(settings: Settings, environ: Mapping[str, str]) -> None:
    """In the child of ``--reload``: serve on the sockets the reloader opened."""
    from thor_gateway.serving.reload import LISTEN_FDS, METRICS_FD

    settings.reload = False
    fds = [int(fd) for fd in environ.get(LISTEN_FDS, "").split(",") if fd]
    if fds:
        settings.bind = [config.Bind("fd", fd=fd) for fd in fds]
        settings.host = settings.port = settings.uds = settings.fd = None
    if environ.get(METRICS_FD):
        settings.metrics_bind = config.Bind("fd", fd=int(environ[METRICS_FD]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run thor-gateway; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve(args, os.environ)
        if getattr(args, "print_config", False):
            sys.stdout.write(config_sources.to_toml(settings))
            return 0
        from thor_gateway.serving.process_setup import prepare

        prepare(settings, serving_child=bool(os.environ.get(RELOADER_CHILD)))
        if getattr(args, "check_config", False):
            check_settings(settings)  # the checks every start runs (below), then the apps
            check_apps(settings)
            sys.stdout.write("configuration OK\n")
            return 0
    except (ConfigError, AppLoadError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    return run(settings, list(sys.argv[1:] if argv is None else argv))


def run(settings: Settings, argv: list[str]) -> int:
    """Serve until told to stop: reloader, master with workers, or one process."""
    from thor_gateway.serving.process_setup import PidFile

    try:
        configure_logs(settings)
        check_settings(settings)  # what --check-config checks: one path for both
        with PidFile(None if os.environ.get(RELOADER_CHILD) else settings.pid):
            if settings.reload:
                from thor_gateway.serving.reload import supervise

                return supervise(settings, argv)
            if settings.workers > 1 or settings.max_requests or settings.workers_max_rss:
                from thor_gateway.serving.workers import Master

                return Master(settings).run()
            from thor_gateway.serving import server

            if os.environ.get(RELOADER_CHILD):  # a broken app answers 500 until it is fixed
                from thor_gateway.serving.reload import serve_load_error

                return server.run_single(settings, serve_load_error)
            return server.run_single(settings)
    except (ConfigError, AppLoadError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    except Exception as error:  # before ready (opening sockets, building the handlers...)
        from thor_gateway.serving.server import startup_failed

        return startup_failed(error)


def configure_logs(settings: Settings) -> None:
    """The error log: --log-level, --log-format, --error-logfile, then --log-config."""
    from thor_gateway.operations import logs

    try:
        logs.configure(
            settings.log_level,
            settings.log_format,
            settings.error_logfile,
            settings.log_repeat_limit,
        )
    except OSError as error:
        raise ConfigError("--error-logfile", error.strerror or str(error)) from None
    if settings.log_config is not None:
        try:
            logs.apply_config_file(settings.log_config)
        except ValueError as error:
            raise ConfigError("--log-config", str(error)) from None
