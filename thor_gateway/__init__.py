"""thor-gateway: serve WSGI, ASGI and native Thor apps, and proxy, on the Thor loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__version__ = "1.0.0.dev0"

__all__ = ["__version__", "native_app"]

F = TypeVar("F", bound=Callable[..., Any])


def native_app(app: F) -> F:
    """Mark ``app`` as a native Thor app (``app(exchange)``); see :mod:`thor_gateway.loading`."""
    from thor_gateway.loading import native_app as mark

    return mark(app)
