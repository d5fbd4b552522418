"""Where settings come from, how they are layered and checked, and how they are written back.

Sources are layered, each one overriding the ones before it: built-in
defaults < config file < environment < command line.  Every value, whatever
its source, is parsed and checked by the same function of its :class:`Kind`
(:mod:`thor_gateway.serving.config_values`); a bad value raises :class:`ConfigError`
naming the flag, key or variable.  :func:`check` then checks the settings
together, once merged.  The declarations themselves are in
:mod:`thor_gateway.serving.config`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from thor_gateway.serving.config import Settings, env_names, options
from thor_gateway.serving.config_values import (
    ConfigError,
    Kind,
    toml_value,
    value_from_text,
    value_from_toml,
)

__all__ = ["check", "docs_table", "from_environment", "from_sources", "load_toml", "to_toml"]


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
    check(settings)
    return settings


# ------------------------------------------------------------ checks


def check(settings: Settings) -> None:
    """Cross-setting checks; raises :class:`ConfigError`."""
    prefixes = [m.prefix for m in settings.all_mounts()] + [p.prefix for p in settings.proxy]
    prefixes += [s.prefix for s in settings.static]
    for prefix in prefixes:
        if prefixes.count(prefix) > 1:
            raise ConfigError("mount", f"the prefix {prefix!r} is mounted twice")
    if not prefixes:
        raise ConfigError("app", "nothing to serve: give MODULE:APP, --mount, --proxy or --static")
    for route in settings.static:
        if not os.path.isdir(route.path):
            raise ConfigError("static", f"{route.path!r} is not a folder")
    if (settings.certfile is None) != (settings.keyfile is None):
        raise ConfigError("certfile", "--certfile and --keyfile go together")
    if settings.workers < 1:
        raise ConfigError("workers", "must be at least 1")
    if settings.threads < 1:
        raise ConfigError("threads", "must be at least 1")
    for name in ("health_path", "ready_path"):
        value = getattr(settings, name)
        if value and not value.startswith("/"):
            raise ConfigError(name, f"must start with '/': {value!r}")
    if settings.root_path and (
        not settings.root_path.startswith("/") or settings.root_path.endswith("/")
    ):
        raise ConfigError("root_path", "must start with '/' and not end with '/'")
    _check_deployment(settings)


def _check_deployment(settings: Settings) -> None:
    """The settings of the process around the apps, and client certificates."""
    if settings.umask is not None:
        try:
            if not 0 <= int(settings.umask, 8) <= 0o777:
                raise ValueError
        except ValueError:
            raise ConfigError(
                "umask", f"expected an octal mask like 022, got {settings.umask!r}"
            ) from None
    if settings.ssl_ca_certs is not None and settings.certfile is None:
        raise ConfigError("ssl_ca_certs", "client certificates need TLS: give --certfile too")
    if settings.ssl_cert_reqs in ("required", "2") and settings.ssl_ca_certs is None:
        raise ConfigError("ssl_cert_reqs", "requiring client certificates needs --ssl-ca-certs")


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
