"""The server package's layout rules (its ``__init__`` docstring states them).

Imports run one way, server -> connection -> exchange (no circle, not even for type
checking); no module reaches into another object's private members; the package never
imports the client or the gateway.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "thor" / "http" / "server"
ORDER = ["server", "connection", "exchange"]  # a module may import only those after it
HELPERS = ["h2c", "rates"]  # pure helpers of the connection, importing no sibling
FORBIDDEN = ("thor.http.client", "thor_gateway")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_package_has_the_modules_the_rules_name() -> None:
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted([*ORDER, *HELPERS, "__init__"])


@pytest.mark.parametrize("module", ORDER + HELPERS)
def test_imports_run_one_way(module: str) -> None:
    imported = imports_of(PACKAGE / f"{module}.py")
    after = ORDER[ORDER.index(module) + 1 :] if module in ORDER else []
    allowed_siblings = {f"thor.http.server.{m}" for m in after}
    if module == "connection":
        allowed_siblings |= {f"thor.http.server.{m}" for m in HELPERS}
    siblings = {n for n in imported if n.startswith("thor.http.server")}
    assert siblings <= allowed_siblings, f"{module}.py imports {siblings - allowed_siblings}"
    assert not [n for n in imported if n.startswith(FORBIDDEN)]


@pytest.mark.parametrize("module", ORDER + HELPERS)
def test_no_module_touches_another_objects_private_members(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    offences = [
        f"{path.name}:{node.lineno} .{node.attr}"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert offences == []
