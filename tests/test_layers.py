"""The library's layers (docs/architecture.md), checked on every module's imports.

Imports inside functions and under TYPE_CHECKING count too: a layer rule is about what a
module may know, not only what it loads at import. (What a core loads at run time is checked
separately, in a fresh interpreter, by tests/test_sans_io.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

# Modules that do IO, or read a clock, or start threads: never in a sans-IO core.
IO = {
    "asyncio",
    "concurrent",
    "multiprocessing",
    "os",
    "select",
    "selectors",
    "signal",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "time",
    "thor.loop",
    "thor.tcp",
    "thor.tcp_client",
    "thor.tcp_connection",
    "thor.tcp_server",
    "thor.tls",
    "thor.udp",
    "thor.dns",
    "thor._sockets",
    "thor._waker",
    "thor.asyncio_loop",
}
# What a sans-IO core may use of the library besides its own package.
CORE_SHARED = ("thor.http.error", "thor.http.headers", "thor.memo", "thor.http.protocol.abnf")
CORES = [
    "thor/http/protocol",
    "thor/websocket/protocol",
    "thor/http2/protocol",
    "thor/proxy_protocol",
]


def imports_of(path: Path, package: str | None = None) -> list[str]:
    """Every module ``path`` imports, absolute, wherever the import statement is."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def core_modules() -> list[Path]:
    return [path for folder in CORES for path in modules(folder)]


def test_the_cores_are_found() -> None:
    assert len(modules("thor/http/protocol")) > 8


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_sans_io_core_imports_no_io_and_only_its_own_package(path: Path) -> None:
    own = ".".join(path.relative_to(ROOT).parts[:3]).removesuffix(".py")
    own = own if own.endswith("protocol") else own.rsplit(".", 1)[0]
    for name in imports_of(path):
        assert not any(under(name, io) for io in IO), f"{path.name} imports {name}: IO"
        if under(name, "thor"):
            allowed = under(name, own) or any(under(name, shared) for shared in CORE_SHARED)
            # ``from thor.http import error`` names the module thor.http.error.
            allowed = allowed or name in ("thor", "thor.http")
            assert allowed, f"{path.name} imports {name}: outside its core"


@pytest.mark.parametrize(
    ("side", "other"),
    [("thor/http/server", "thor.http.client"), ("thor/http/client", "thor.http.server")],
)
def test_the_server_and_the_client_do_not_know_each_other(side: str, other: str) -> None:
    paths = modules(side) or [ROOT / f"{side}.py"]
    for path in paths:
        for name in imports_of(path):
            assert not under(name, other), f"{path} imports {name}"


def test_the_library_never_imports_the_gateway() -> None:
    for path in modules("thor"):
        for name in imports_of(path):
            assert not under(name, "thor_gateway"), f"{path} imports {name}"


def test_the_exchange_contract_does_no_io() -> None:
    type_only = {"thor.loop", "thor.loop.Loop"}  # under TYPE_CHECKING, for the `loop` annotation
    for name in imports_of(ROOT / "thor/http/exchange.py"):
        assert name in type_only or not any(under(name, io) for io in IO), name


def test_the_rules_can_fail(tmp_path: Path) -> None:
    """imports_of sees function-level and relative imports, so the checks above can fail."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import socket\n    from . import reader\n")
    names = imports_of(probe, package="thor.http.protocol")
    assert "socket" in names
    assert "thor.http.protocol.reader" in names
