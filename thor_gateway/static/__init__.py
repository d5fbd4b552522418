"""Static files: a folder served under a path prefix (``--static /static=./folder``).

- :mod:`~thor_gateway.static.handler`: :class:`StaticHandler`, the mountable handler
  (re-exported here);
- :mod:`~thor_gateway.static.rules`: the pure part: safe paths, validators, conditional
  requests (RFC 9110 §13), ranges (§14), content codings;
- :mod:`~thor_gateway.static.body`: sending a file: ``os.sendfile`` on plain TCP, reads as the
  client drains over TLS, ``multipart/byteranges``.

May import: Thor's public API, :mod:`thor_gateway.routing` (the request, the handler
interface, the gateway's refusals) and :mod:`thor_gateway.operations`; never hosting, proxy,
aggregation or serving (serving builds the handler from a ``--static`` route).
"""

from thor_gateway.static.handler import StaticHandler

__all__ = ["StaticHandler"]
