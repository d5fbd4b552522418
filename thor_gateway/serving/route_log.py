"""The startup log's one line per route: where each prefix goes (``Serving /api -> ...``)."""

from __future__ import annotations

import logging
from typing import Any

from thor_gateway.serving.config import Settings

log = logging.getLogger("thor_gateway.server")  # the startup lines read as the server's


def log_routes(settings: Settings) -> None:
    """Log where each prefix goes, in the order the settings list them."""
    for mount in settings.all_mounts():
        kind = "" if mount.interface == "auto" else f" ({mount.interface})"
        log.info("Serving %s -> %s%s", mount.prefix, mount.app, kind)
    for route in settings.proxy:
        upstreams = ", ".join(map(_describe_upstream, route.upstreams))
        log.info("Serving %s -> proxy to %s", route.prefix, upstreams)
    for static in settings.static:
        log.info("Serving %s -> files in %s", static.prefix, static.path)


def _describe_upstream(upstream: Any) -> str:
    """A URL as it is; a table as ``URL (weight 3, max_connections 10)``."""
    if isinstance(upstream, str):
        return upstream
    options = ", ".join(f"{k} {v}" for k, v in upstream.items() if k != "url")
    return f"{upstream.get('url')} ({options})" if options else str(upstream.get("url"))
