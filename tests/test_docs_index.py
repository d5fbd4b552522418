"""docs/index.md lists every page of docs/ (issue 14), and the README points to it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_index_lists_every_page_and_only_pages_that_exist() -> None:
    index = (DOCS / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w./-]+)\)", index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages - linked == set(), "pages missing from docs/index.md"
    for target in linked:
        assert (DOCS / target).exists(), f"docs/index.md links to a missing {target}"
    for example in (DOCS / "examples").glob("*.py"):
        assert example.name in index


def test_the_readme_says_what_a_new_user_needs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/index.md" in readme
    assert "Python 3.11" in readme
    assert "python -m pip install flask" in readme
    assert "thor-gateway -c apps/gateway.toml -b 127.0.0.1:9000" in readme
    # The two commands stay as they were.
    assert "python -m pip install -e . && thor-gateway -c apps/gateway.toml\n" in readme
    assert "bash .ci/run\n" in readme


def test_the_readme_port_change_works() -> None:
    from tests.gateway.gateway_helpers import run_cli

    done = run_cli("-c", "apps/gateway.toml", "-b", "127.0.0.1:9000", "--print-config")
    assert done.returncode == 0, done.stderr
    assert 'bind = ["127.0.0.1:9000"]' in done.stdout.splitlines()
