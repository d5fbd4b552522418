"""The client package's layout rules: no import circles, no reaching into others' privates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "thor" / "http" / "client"
MODULES = sorted(PACKAGE.glob("*.py"))
# The documented order (thor/http/client/__init__.py): each module imports only earlier ones.
ORDER = [
    "url",
    "retry",
    "phase",
    "on_stream",
    "connection",
    "exchange",
    "pool",
    "client",
    "__init__",
]
# Private names that are not another object's state (NamedTuple's API).
ALLOWED = {"_replace"}


def runtime_imports(tree: ast.Module) -> set[str]:
    """Modules of this package imported at run time (``if TYPE_CHECKING:`` blocks aside)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("thor.http.client."):
                    found.add(node.module.rsplit(".", 1)[1])
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


def foreign_privates(tree: ast.Module) -> list[str]:
    """``x._name`` where x is not self/cls (a module touching another object's private)."""
    return [
        f"{ast.unparse(node)} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in ALLOWED
        and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
    ]


def test_every_module_is_in_the_documented_order() -> None:
    assert sorted(p.stem for p in MODULES) == sorted(ORDER)
    doc = (PACKAGE / "__init__.py").read_text()
    assert all(f"{name}.py" in doc for name in ORDER if name != "__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_earlier_modules(path: Path) -> None:
    earlier = set(ORDER[: ORDER.index(path.stem)])
    later = runtime_imports(ast.parse(path.read_text())) - earlier
    assert not later, f"{path.name} imports {sorted(later)} at run time: a circle"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_touches_no_private_member_of_another_object(path: Path) -> None:
    assert foreign_privates(ast.parse(path.read_text())) == []


def test_the_checks_catch_what_they_look_for() -> None:
    bad = ast.parse(
        "from thor.http.client.pool import OriginPool\n"
        "if TYPE_CHECKING:\n    from thor.http.client.client import HttpClient\n"
        "def f(client):\n    return client._pools, self._mine, x.__class__\n"
    )
    assert runtime_imports(bad) == {"pool"}
    assert foreign_privates(bad) == ["client._pools (line 5)"]
