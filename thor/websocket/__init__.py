"""Thor's WebSocket (RFC 6455, with RFC 7692 permessage-deflate).

:mod:`thor.websocket.protocol` is the sans-IO core: the opening handshake for both sides,
a connection object per side that turns bytes into events and calls into bytes, and the
permessage-deflate extension on the stdlib ``zlib``.  It does no IO, reads no clock and
starts no thread; the IO side (a ``WebSocket`` event emitter on top of the HTTP server's
switch point, a client, the ASGI ``websocket`` scope) feeds it.

This package imports nothing at import time, so that importing the core loads no IO
module; ``accept``, ``is_websocket_request``, ``WebSocket``, ``WebSocketError`` and
``WebSocketClient`` are loaded on first use. See docs/websocket.md.

One exception: with ``THOR_WS_PURE=1`` in the environment (any value but empty or ``0``),
it imports the core's ``frames`` and turns its C masking accelerator off, so the standard
library's masking runs (RFC 6455 §5.3; docs/websocket.md, "Speed"). That is read here, not
in the core, which reads no environment; this package always runs before its core does.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["WebSocket", "WebSocketClient", "WebSocketError", "accept", "is_websocket_request"]

_LAZY = {
    "WebSocket": "thor.websocket.websocket",
    "WebSocketError": "thor.websocket.websocket",
    "WebSocketClient": "thor.websocket.client",
    "accept": "thor.websocket.server",
    "is_websocket_request": "thor.websocket.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thor.websocket' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if os.environ.get("THOR_WS_PURE", "") not in ("", "0"):
    from thor.websocket.protocol import frames as _frames

    _frames.use_accelerator(False)
