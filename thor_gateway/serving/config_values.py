"""How setting values are written and read: kinds, addresses, mounts, proxies.

Every value of a setting, whatever its source, goes through one function of its
:class:`Kind`: text from the command line or the environment through
:func:`value_from_text`, a TOML value through :func:`value_from_toml`; a bad
value raises ``ValueError`` with a message the caller prefixes with the flag,
key or variable (:class:`ConfigError`).  :func:`toml_value` writes a value back.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "Bind",
    "ConfigError",
    "Kind",
    "Mount",
    "Option",
    "ProxyRoute",
    "StaticRoute",
    "parse_bind",
    "parse_mount",
    "parse_proxy",
    "parse_static",
    "toml_value",
    "value_from_text",
    "value_from_toml",
]


class ConfigError(Exception):
    """A setting is wrong; ``where`` names the flag, key or variable."""

    exit_status = 2

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class Kind(enum.Enum):
    """How a setting's text (command line, environment) or TOML value is read."""

    STR = "text"
    PATH = "path"
    INT = "integer"
    SIZE = "bytes"  # 1048576, 1024k, 1m, 1g
    SECONDS = "seconds"  # 30, 2.5, 30s, 5m, 1h
    BOOL = "boolean"
    CHOICE = "choice"
    LIST = "list"  # repeatable flag; comma-separated in the environment
    BINDS = "binds"  # a LIST of HOST:PORT | unix:PATH | fd://N
    MOUNTS = "mounts"  # --mount /prefix=module:app  |  [[mount]] tables
    PROXIES = "proxies"  # --proxy /prefix=URL[,URL]  |  [[proxy]] tables
    STATICS = "static folders"  # --static /prefix=./folder  |  [[static]] tables


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is spelled on each surface."""

    flags: tuple[str, ...]
    help: str
    kind: Kind
    choices: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # conventional names read besides THOR_<NAME>
    metavar: str | None = None
    section: str = "Serving"


@dataclass(frozen=True, slots=True)
class Bind:
    """One listening address: ``tcp`` (host, port), ``unix`` (path) or ``fd`` (descriptor)."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Mount:
    """An app served under ``prefix`` (``"/"`` for the root)."""

    prefix: str
    app: str
    interface: str = "auto"
    factory: bool = False


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """A ``[[proxy]]`` table: ``prefix`` and ``upstreams``; the other keys go to the proxy."""

    prefix: str
    # URLs, or tables {url = ..., weight = ..., max_connections = ...} as in the Python API
    upstreams: tuple[str | Mapping[str, Any], ...]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A folder of files served under ``prefix`` (``--static``, ``[[static]]``)."""

    prefix: str
    path: str
    cache_control: str = ""  # the Cache-Control value sent; "" sends none
    follow_symlinks: bool = False  # serve symlinks that lead out of the folder
    index: bool = False  # a directory ending in '/' serves its index.html
    precompressed: bool = True  # serve FILE.gz for FILE when Accept-Encoding allows gzip


INTERFACES = ("auto", "wsgi", "asgi", "thor")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# ------------------------------------------------------------------ parsing

_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_BOOL_WORDS |= {"0": False, "false": False, "no": False, "off": False}
_SECONDS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_SIZE = re.compile(r"(\d+)\s*([kmg])?b?", re.IGNORECASE)
_SECOND_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` (every address), ``unix:PATH``, ``fd://N``."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ValueError("unix: needs a path")
        return Bind("unix", path=text[5:])
    if text.startswith("fd://"):
        return Bind("fd", fd=_non_negative(int(text[5:])))
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, "8000"
        if ":" in host:
            raise ValueError(f"write IPv6 addresses in brackets: [{host}]:{port_text}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    return Bind("tcp", host=host, port=port)


def _non_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must not be negative: {value}")
    return value


def _seconds(text: str) -> float:
    match = _SECONDS.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected seconds (30, 2.5, 500ms, 5m, 1h), got {text!r}")
    return float(match[1]) * _SECOND_UNITS[match[2]]


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a size in bytes (1048576, 512k, 10m, 1g), got {text!r}")
    unit = match[2].lower() if match[2] else None
    return int(match[1]) * _SIZE_UNITS[unit]


def _bool(text: str) -> bool:
    try:
        return _BOOL_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"expected true or false, got {text!r}") from None


def parse_mount(text: str) -> Mount:
    """``/prefix=module:app`` (``=`` alone means the root)."""
    prefix, sep, spec = text.partition("=")
    if not sep or not spec:
        raise ValueError(f"expected /PREFIX=MODULE:APP, got {text!r}")
    return Mount(_prefix(prefix), spec)


def parse_proxy(text: str) -> ProxyRoute:
    """``/prefix=URL[,URL...]``."""
    prefix, sep, urls = text.partition("=")
    upstreams = tuple(u.strip() for u in urls.split(",") if u.strip())
    if not sep or not upstreams:
        raise ValueError(f"expected /PREFIX=URL[,URL], got {text!r}")
    return ProxyRoute(_prefix(prefix), _urls(upstreams))


def parse_static(text: str) -> StaticRoute:
    """``/prefix=./folder``."""
    prefix, sep, path = text.partition("=")
    if not sep or not path.strip():
        raise ValueError(f"expected /PREFIX=FOLDER, got {text!r}")
    return StaticRoute(_prefix(prefix), path.strip())


def _prefix(text: str) -> str:
    text = text.strip() or "/"
    if not text.startswith("/"):
        raise ValueError(f"a prefix starts with '/': {text!r}")
    if "?" in text or "#" in text:
        raise ValueError(f"a prefix is a path, without '?' or '#': {text!r}")
    return text.rstrip("/") or "/"


def _urls(upstreams: tuple[Any, ...]) -> tuple[Any, ...]:
    """URLs, or (TOML) tables {url = ..., weight = ..., max_connections = ...}.

    Only the URLs are checked here; the proxy checks the rest (``checks.check_settings``).
    """
    for upstream in upstreams:
        url = upstream.get("url", "") if isinstance(upstream, Mapping) else upstream
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "h2c://")):
            raise ValueError(f"an upstream is an http://, https:// or h2c:// URL: {upstream!r}")
    return upstreams


def _from_text(option: Option, text: str) -> Any:
    """Parse a command-line or environment value of ``option``'s kind."""
    kind = option.kind
    if kind is Kind.INT:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        return _non_negative(number)
    if kind is Kind.SECONDS:
        return _seconds(text)
    if kind is Kind.SIZE:
        return _size(text)
    if kind is Kind.BOOL:
        return _bool(text)
    if kind is Kind.CHOICE:
        if text not in option.choices:
            raise ValueError(f"expected one of {', '.join(option.choices)}; got {text!r}")
        return text
    return text


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _list_from_text(option: Option, texts: list[str]) -> Any:
    """A repeatable flag's values, or an environment value split at commas."""
    if option.kind is Kind.BINDS:
        binds = [parse_bind(t) for text in texts for t in _split(text)]
        return binds if "--bind" in option.flags else (binds[-1] if binds else None)
    if option.kind is Kind.MOUNTS:
        return [parse_mount(t) for text in texts for t in _split(text)]
    if option.kind is Kind.PROXIES:
        # URLs are comma-separated inside one route: routes are ';'-separated in the environment.
        return [parse_proxy(t.strip()) for text in texts for t in text.split(";") if t.strip()]
    if option.kind is Kind.STATICS:
        # Folder names may hold commas: routes are ';'-separated in the environment.
        return [parse_static(t.strip()) for text in texts for t in text.split(";") if t.strip()]
    return [item for text in texts for item in _split(text)]


_LIST_KINDS = (Kind.LIST, Kind.BINDS, Kind.MOUNTS, Kind.PROXIES, Kind.STATICS)


def value_from_text(option: Option, value: str | list[str]) -> Any:
    """Parse text from the command line or the environment."""
    if option.kind in _LIST_KINDS:
        return _list_from_text(option, value if isinstance(value, list) else [value])
    assert isinstance(value, str)
    return _from_text(option, value)


def value_from_toml(name: str, option: Option, value: Any) -> Any:
    """Check and convert a TOML value; TOML's own types are taken as they are."""
    kind = option.kind
    if kind is Kind.MOUNTS:
        return [_mount_table(name, v) if isinstance(v, dict) else parse_mount(v) for v in value]
    if kind is Kind.PROXIES:
        return [_proxy_table(v) if isinstance(v, dict) else parse_proxy(v) for v in value]
    if kind is Kind.STATICS:
        items = value if isinstance(value, list) else [value]
        return [_static_table(v) if isinstance(v, dict) else parse_static(v) for v in items]
    if kind in _LIST_KINDS:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return _list_from_text(option, items)
    if kind is Kind.BOOL and isinstance(value, bool):
        return value
    if kind in (Kind.INT, Kind.SIZE) and isinstance(value, int) and not isinstance(value, bool):
        return _non_negative(value)
    if kind is Kind.SECONDS and isinstance(value, int | float) and not isinstance(value, bool):
        return float(_non_negative(value))  # type: ignore[arg-type]
    if isinstance(value, str) and kind not in (Kind.BOOL, Kind.INT):
        return _from_text(option, value)
    article = "an" if kind.value[0] in "aeiou" else "a"
    raise ValueError(f"expected {article} {kind.value}, got {type(value).__name__} {value!r}")


def _mount_table(name: str, table: dict[str, Any]) -> Mount:
    unknown = set(table) - {"prefix", "app", "interface", "factory"}
    if unknown:
        raise ValueError(f"unknown key(s) in a [[{name}]] table: {', '.join(sorted(unknown))}")
    if not isinstance(table.get("app"), str):
        raise ValueError("a [[mount]] table needs app = 'module:app'")
    interface = table.get("interface", "auto")
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {', '.join(INTERFACES)}; got {interface!r}")
    factory = table.get("factory", False)
    if not isinstance(factory, bool):
        raise ValueError(f"factory must be true or false, got {factory!r}")
    return Mount(_prefix(str(table.get("prefix", "/"))), table["app"], interface, factory)


def _proxy_table(table: dict[str, Any]) -> ProxyRoute:
    upstreams = table.get("upstreams", table.get("upstream"))
    if isinstance(upstreams, str | dict):  # one URL or one table, as handler_from_config
        upstreams = [upstreams]
    if not isinstance(upstreams, list) or not upstreams:
        raise ValueError("a [[proxy]] table needs upstreams = ['http://host:port', ...]")
    options = {k: v for k, v in table.items() if k not in ("prefix", "upstreams", "upstream")}
    return ProxyRoute(_prefix(str(table.get("prefix", "/"))), _urls(tuple(upstreams)), options)


def _static_table(table: dict[str, Any]) -> StaticRoute:
    defaults = StaticRoute("/", "")
    unknown = set(table) - {f.name for f in fields(StaticRoute)}
    if unknown:
        raise ValueError(f"unknown key(s) in a [[static]] table: {', '.join(sorted(unknown))}")
    path = table.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError("a [[static]] table needs path = './folder'")
    cache_control = table.get("cache_control", defaults.cache_control)
    if not isinstance(cache_control, str) or any(c < " " or c == "\x7f" for c in cache_control):
        raise ValueError(f"cache_control must be a header value, got {cache_control!r}")
    flags = {}
    for key in ("follow_symlinks", "index", "precompressed"):
        flag = table.get(key, getattr(defaults, key))
        if not isinstance(flag, bool):
            raise ValueError(f"{key} must be true or false, got {flag!r}")
        flags[key] = flag
    return StaticRoute(_prefix(str(table.get("prefix", "/"))), path, cache_control, **flags)


def toml_value(value: Any) -> str:
    """``value`` as TOML (for ``--print-config``); reads back equal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Bind):
        return toml_value(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"no TOML spelling for {value!r}")


# ------------------------------------------------------------ declaring a setting


def meta(*flags: str, help: str, kind: Kind, **more: Any) -> dict[str, Option]:
    """The metadata of a setting's field: its :class:`Option`."""
    return {"option": Option(flags, help, kind, **more)}


def opt(default: Any, *flags: str, help: str, kind: Kind, **more: Any) -> Any:
    """A field with an immutable default (lists go through ``field`` and :func:`meta`)."""
    return dataclasses.field(default=default, metadata=meta(*flags, help=help, kind=kind, **more))


def default_allow_ips() -> list[str]:
    """Whose forwarding fields are trusted by default: the loopback addresses."""
    return ["127.0.0.1", "::1"]
