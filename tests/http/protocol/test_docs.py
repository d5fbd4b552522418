"""The example in docs/http-protocol.md runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "http-protocol.md"


def test_doc_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = next(b for b in blocks if "parser.feed(piece)" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(DOC), "exec"), {})
    printed = out.getvalue()
    assert "Body(data=b'hello')" in printed
    assert "ParserState.DONE" in printed
    assert "Connection: close" in printed
