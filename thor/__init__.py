"""Thor: evented HTTP intermediation.

The default loop is driven with :func:`run`, :func:`stop` and
:func:`schedule`; :func:`run_in_loop` is the only call that is safe from
another thread.  Classes are importable from here: ``thor.TcpServer``,
``thor.HttpServer``, ``thor.HttpClient``, ``thor.TlsClient``...
"""

from __future__ import annotations

import importlib
from typing import Any

from thor.events import EventEmitter, on

__version__ = "1.0.0.dev0"

__all__ = [
    "EventEmitter",
    "HttpClient",
    "HttpClientExchange",
    "HttpServer",
    "HttpServerExchange",
    "TcpClient",
    "TcpConnection",
    "TcpServer",
    "TlsClient",
    "TlsServer",
    "UdpEndpoint",
    "WebSocketClient",
    "__version__",
    "loop",
    "on",
    "run",
    "run_in_loop",
    "schedule",
    "stop",
    "time",
]

# Imported on first use, so that `import thor` stays cheap and opens nothing: the sans-IO
# cores (thor.http.protocol, thor.websocket.protocol, thor.http2.protocol) import this
# package but no IO module.
_LAZY = {
    "loop": "thor",
    "run": "thor.loop",
    "run_in_loop": "thor.loop",
    "schedule": "thor.loop",
    "stop": "thor.loop",
    "time": "thor.loop",
    "TcpClient": "thor.tcp",
    "TcpConnection": "thor.tcp",
    "TcpServer": "thor.tcp",
    "HttpClient": "thor.http.client",
    "HttpClientExchange": "thor.http.client",
    "HttpServer": "thor.http.server",
    "HttpServerExchange": "thor.http.server",
    "TlsClient": "thor.tls",
    "TlsServer": "thor.tls",
    "UdpEndpoint": "thor.udp",
    "WebSocketClient": "thor.websocket.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thor' has no attribute {name!r}")
    value = (
        importlib.import_module(f"thor.{name}")
        if module == "thor"
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value
    return value
