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
- the reference table of ``docs/gateway.md``
  (:func:`~thor_gateway.serving.config_sources.docs_table`).

Waitress declares its settings in three files that must be kept in step; here
there is one place, and a test checks that the docs list every setting.

How the sources are read, layered and checked is
:mod:`thor_gateway.serving.config_sources`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from thor_gateway.serving.config_apps import AppSettings, ServingSettings
from thor_gateway.serving.config_running import LimitSettings, OperationSettings, ProcessSettings
from thor_gateway.serving.config_values import (
    Bind,
    ConfigError,
    Kind,
    Mount,
    Option,
    ProxyRoute,
    StaticRoute,
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
    "StaticRoute",
    "env_names",
    "options",
    "parse_bind",
    "value_from_text",
]


@dataclass
class Settings(OperationSettings, LimitSettings, ProcessSettings, ServingSettings, AppSettings):
    """Every setting of thor-gateway; see ``docs/gateway.md`` for the table derived from it.

    The fields are declared by section in :mod:`~thor_gateway.serving.config_apps` and
    :mod:`~thor_gateway.serving.config_running`; a dataclass takes its bases' fields in
    reverse order of the bases, so the order here is Apps, Serving, Processes, Limits and
    timeouts, Operations (the order of ``--help`` and of the docs table).
    """

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
