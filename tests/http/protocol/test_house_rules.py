"""The protocol package stays sans-IO and small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "thor" / "http" / "protocol"
FORBIDDEN = {
    "socket",
    "selectors",
    "ssl",
    "threading",
    "asyncio",
    "time",
    "select",
    "thor.loop",
    "thor.tcp",
}
MODULES = sorted(PACKAGE.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def is_forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def test_package_found() -> None:
    assert len(MODULES) >= 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    bad = sorted(n for n in imported_modules(path) if is_forbidden(n))
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_size(path: Path) -> None:
    assert len(path.read_text().splitlines()) < 600


def test_checker_catches_io(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom thor.loop import run\nfrom thor import tcp\nimport os\n")
    found = {n for n in imported_modules(bad) if is_forbidden(n)}
    assert found == {"time", "thor.loop", "thor.loop.run", "thor.tcp"}
