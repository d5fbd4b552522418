"""The gateway's layers: which part may import which, and which of Thor it may use.

The rules are the ones each package's ``__init__`` docstring states; this test reads every
module's imports with :mod:`ast` (module level, inside functions and under
``TYPE_CHECKING`` alike) and fails on any import outside them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "thor_gateway"

# Thor's public surface, the only library modules the gateway may import: the gateway is
# a set of handlers on the library's public API (house style §7), so an internal such as
# ``thor.http.server_connection`` or a ``_private`` module is never reached for.
PUBLIC_LIBRARY = frozenset(
    {
        "thor",
        "thor.loop",
        "thor.events",
        "thor.tcp",
        "thor.tls",
        "thor.dns",
        "thor.udp",
        "thor.memo",
        "thor.asyncio_loop",
        "thor.http",
        "thor.http.client",
        "thor.http.server",
        "thor.http.error",
        "thor.http.headers",
        "thor.http.exchange",
        "thor.http.protocol",
        "thor.http.protocol.abnf",
        "thor.websocket",
        "thor.websocket.protocol",
        "thor.websocket.server",
        "thor.websocket.websocket",
    }
)

# The parts of the gateway, bottom up, and what each may import besides itself; "" is the
# package's own ``__init__`` and ``__main__``.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "operations": frozenset(),
    "routing": frozenset({"operations"}),
    "aggregation": frozenset(),
    "hosting": frozenset({"routing", "operations"}),
    "proxy": frozenset({"routing", "operations", "aggregation"}),
    "static": frozenset({"routing", "operations"}),
    "cache": frozenset({"routing", "operations", "static"}),  # (static.body sends files)
    "serving": frozenset(
        {"operations", "routing", "aggregation", "hosting", "proxy", "static", "cache"}
    ),
    "": frozenset({"serving"}),
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(GATEWAY.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(name: str, path: Path) -> Iterator[str]:
    """Every module ``path`` imports; ``from a import b`` yields ``a.b`` when b is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            for alias in node.names:
                if is_module(f"{base}.{alias.name}"):
                    yield f"{base}.{alias.name}"


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split("."))
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative).is_dir()


def part_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else ""


def test_the_parts_are_the_packages() -> None:
    packages = {path.parent.name for path in GATEWAY.glob("*/__init__.py")}
    assert packages == set(MAY_IMPORT) - {""}
    loose = {path.stem for path in GATEWAY.glob("*.py")}
    assert loose == {"__init__", "__main__"}, "a gateway module belongs in one of its parts"


def test_each_part_says_what_it_may_import() -> None:
    for part in set(MAY_IMPORT) - {""}:
        docstring = ast.get_docstring(ast.parse((GATEWAY / part / "__init__.py").read_text()))
        assert docstring is not None
        assert "May import:" in docstring, part


def test_the_parts_have_no_cycle() -> None:
    # Depth-first walk over the allowed directions; a part met again on its own path is a cycle.
    def walk(part: str, path: tuple[str, ...]) -> None:
        assert part not in path, " -> ".join((*path, part))
        for lower in MAY_IMPORT[part]:
            walk(lower, (*path, part))

    for part in MAY_IMPORT:
        walk(part, ())


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=lambda value: str(value))
def test_imports_follow_the_layers(name: str, path: Path) -> None:
    own = part_of(name)
    for target in imported(name, path):
        top = target.split(".")[0]
        if top == "thor":
            assert target in PUBLIC_LIBRARY, f"{name} imports {target}, not public Thor API"
        elif top == "thor_gateway" and target != "thor_gateway":
            # The bare package (its __version__) is loaded by every import of a part anyway.
            other = part_of(target)
            assert other == own or other in MAY_IMPORT[own], (
                f"{name} ({own or 'top'}) may not import {target} ({other or 'top'})"
            )


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The rules above must be able to fail: a hosting module reaching for the proxy, and any
    # module reaching into a private library module, are caught.
    module = tmp_path / "bad.py"
    module.write_text(
        "from thor_gateway.proxy import ProxyHandler\n"
        "def f():\n"
        "    from thor.http import server_connection\n"
        "    import thor._waker\n"
    )
    found = set(imported("thor_gateway.hosting.bad", module))
    assert "thor_gateway.proxy" in found
    assert "thor.http.server_connection" in found or not is_module("thor.http.server_connection")
    assert "thor._waker" in found
    assert "thor._waker" not in PUBLIC_LIBRARY
    assert part_of("thor_gateway.proxy") not in MAY_IMPORT["hosting"]
