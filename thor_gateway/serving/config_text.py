"""The settings as text: a config file (``--print-config``) and the docs' reference table.

Both walk :func:`~thor_gateway.serving.config.options`, so they follow every setting the
:class:`~thor_gateway.serving.config.Settings` dataclass declares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from thor_gateway.serving.config import Kind, Settings, env_names, options
from thor_gateway.serving.config_values import toml_value

__all__ = ["docs_table", "to_toml"]


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
