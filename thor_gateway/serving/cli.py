"""The command line: ``thor-gateway [OPTIONS] [MODULE:APP]`` (argparse only).

Every flag comes from :mod:`thor_gateway.serving.config`; this module adds only what is
not a setting: ``-c/--config``, ``--check-config``, ``--print-config`` and
``--version``.  Flags the user did not type are absent from the parsed
namespace (``argparse.SUPPRESS``), so that they do not hide the config file
or the environment.

Exit status: 0 after a clean shutdown or a successful ``--check-config``;
2 for bad configuration (a message names the flag, key or variable), an app
that cannot be loaded, or any other error before the server is ready.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import thor_gateway
from thor_gateway.serving import config, config_text
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
        where = option.flags[-1] if option.flags else "MODULE:APP"
        try:
            values[name] = config.value_from_text(option, raw)
        except ValueError as error:
            raise ConfigError(where, str(error)) from None
    return values


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Settings from defaults < config file < environment < flags."""
    file_values = config.load_toml(args.config) if getattr(args, "config", None) else {}
    env_values = config.from_environment(environ)
    settings = config.from_sources(file_values, env_values, _flag_values(args))
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


def check_apps(settings: Settings) -> None:
    """Import every mounted app and tell its interface (``--check-config``)."""
    from thor_gateway.serving.loading import detect_interface, import_app
    from thor_gateway.serving.server import preflight

    preflight(settings)

    for mount in settings.all_mounts():
        obj = import_app(mount.app, mount.factory)
        if mount.interface == "auto":
            detect_interface(obj, f"mount {mount.prefix}={mount.app}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run thor-gateway; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve(args, os.environ)
        if getattr(args, "print_config", False):
            sys.stdout.write(config_text.to_toml(settings))
            return 0
        if getattr(args, "check_config", False):
            check_apps(settings)
            sys.stdout.write("configuration OK\n")
            return 0
    except (ConfigError, AppLoadError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    return run(settings, list(sys.argv[1:] if argv is None else argv))


def run(settings: Settings, argv: list[str]) -> int:
    """Serve until told to stop: reloader, master with workers, or one process."""
    from thor_gateway.operations import logs

    logs.configure(settings.log_level, settings.log_format, settings.log_repeat_limit)
    try:
        if settings.reload:
            from thor_gateway.serving.reload import supervise

            return supervise(settings, argv)
        if settings.workers > 1 or settings.max_requests:
            from thor_gateway.serving.workers import Master

            return Master(settings).run()
        from thor_gateway.serving import server

        return server.run_single(settings)
    except (ConfigError, AppLoadError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    except Exception as error:  # before ready (opening sockets, building the handlers...)
        from thor_gateway.serving.server import startup_failed

        return startup_failed(error)
