"""thor-gateway: serve WSGI, ASGI and native Thor apps, and proxy, on the Thor loop.

The parts, bottom up (each may import only the ones before it, and Thor's public API;
``tests/gateway/test_layers.py`` enforces it):

- :mod:`thor_gateway.operations`: logs, access log, metrics;
- :mod:`thor_gateway.routing`: the request, the handler interface, the router, client
  identity behind trusted proxies, the gateway's own refusals;
- :mod:`thor_gateway.aggregation`: fan-out and combine, and response transforms;
- :mod:`thor_gateway.hosting`: WSGI, ASGI and native apps;
- :mod:`thor_gateway.proxy`: the reverse proxy (forwarding, balancing, upstreams, health,
  retries);
- :mod:`thor_gateway.static`: static files from a folder (``--static``);
- :mod:`thor_gateway.cache`: the HTTP cache (RFC 9111) in front of a route (``--cache``);
- :mod:`thor_gateway.serving`: the command line, settings, app loading, listeners,
  the server process, workers and reload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__version__ = "1.0.0.dev0"

__all__ = ["__version__", "native_app"]

F = TypeVar("F", bound=Callable[..., Any])


def native_app(app: F) -> F:
    """Mark ``app`` as a native Thor app (``app(exchange)``).

    See :mod:`thor_gateway.serving.loading`.
    """
    from thor_gateway.serving.loading import native_app as mark

    return mark(app)
