"""Apps the slow-client tests serve through ``python -m thor_gateway``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def length(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Read the whole body; answer its length."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % len(body)]
