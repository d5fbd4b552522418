"""The reverse proxy: a mountable handler that forwards requests to a set of upstreams.

- :mod:`~thor_gateway.proxy.handler`: :class:`ProxyHandler`, its settings and config helpers
  (re-exported here: ``from thor_gateway.proxy import ProxyHandler`` is the documented name);
- :mod:`~thor_gateway.proxy.relay`: one proxied request, relayed with backpressure, and its
  failures;
- :mod:`~thor_gateway.proxy.tunnel`: the bytes of a switched connection (WebSocket and
  other Upgrades, after a relayed 101), relayed both ways;
- :mod:`~thor_gateway.proxy.forwarding`: RFC 9110 §7.6 header and target rewriting (pure);
- :mod:`~thor_gateway.proxy.upstreams`: upstream sets, members, DNS re-resolution;
- :mod:`~thor_gateway.proxy.balancer`: which member takes the next request (a new balancing
  policy goes here);
- :mod:`~thor_gateway.proxy.health_checks`: active checks and passive ejection;
- :mod:`~thor_gateway.proxy.retries`: retry budgets.

May import: Thor's public API, :mod:`thor_gateway.routing`, :mod:`thor_gateway.operations`
(upstream metrics) and :mod:`thor_gateway.aggregation` (response transforms); never hosting or
serving.
"""

from __future__ import annotations

from thor_gateway.proxy.handler import (
    ProxyHandler,
    ProxySettings,
    handler_from_config,
    request_for,
    settings_from_flags,
)

__all__ = [
    "ProxyHandler",
    "ProxySettings",
    "handler_from_config",
    "request_for",
    "settings_from_flags",
]
