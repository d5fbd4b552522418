"""Thor's HTTP/1.1: the sans-IO core (:mod:`thor.http.protocol`), the server and the client.

``from thor.http import HttpServer, HttpClient`` works as in Thor 0.17; the classes are
imported on first use so that the protocol core can be imported alone.
"""

from __future__ import annotations

import importlib
from typing import Any

from thor.http.exchange import Exchange, TlsInfo
from thor.http.headers import (
    get_header,
    header_dict,
    header_names,
    strip_hop_by_hop,
)

__all__ = [
    "Exchange",
    "HttpClient",
    "HttpClientExchange",
    "HttpServer",
    "HttpServerExchange",
    "TlsInfo",
    "get_header",
    "header_dict",
    "header_names",
    "strip_hop_by_hop",
]

_LAZY = {
    "HttpClient": "thor.http.client",
    "HttpClientExchange": "thor.http.client",
    "HttpServer": "thor.http.server",
    "HttpServerExchange": "thor.http.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thor.http' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
