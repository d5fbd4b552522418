"""Routing: the front door every request goes through before an app or a proxy sees it.

- :mod:`~thor_gateway.routing.request`: the :class:`Request` the router hands over and the
  :class:`Handler` interface that every mountable handler (hosting, proxy, aggregation)
  implements;
- :mod:`~thor_gateway.routing.router`: segment-boundary, longest-prefix mounts, the health
  and readiness paths, draining and the concurrency limit;
- :mod:`~thor_gateway.routing.forwarded`: who the client is when a trusted proxy says so
  (RFC 7239, X-Forwarded-*);
- :mod:`~thor_gateway.routing.deadline`: ``--request-timeout``, a deadline per request to a
  mounted app (504, or the response cut short);
- :mod:`~thor_gateway.routing.errors`: the requests the gateway itself refuses, one class
  per cause, and how they are answered.

May import: Thor's public API and :mod:`thor_gateway.operations`; never hosting, proxy,
aggregation or serving (they are mounted *on* the router, which does not know them).
"""
