"""thor.http.client: Thor's HTTP/1.1 client (IO side), with a connection pool per origin.

Modules, each importing only those before it (no circles; type-only imports aside)::

    url.py         the URL and the header fields of a request (pure)
    retry.py       the retry rules (pure)
    phase.py       Phase: where an exchange is
    on_stream.py   StreamCarried: an exchange's side of an HTTP/2 stream (thor.http2.client)
    connection.py  PooledConnection: one TCP/TLS connection + the sans-IO ClientConnection
    exchange.py    HttpClientExchange: one request/response, its phase, retries, timers
    pool.py        OriginPool: the connections of one origin and the exchanges waiting
    client.py      HttpClient: settings, and the one owner of the pools

Framing, keep-alive, 100-continue and the protocol switch are decided by the sans-IO
``thor.http.protocol.client_connection``; these modules move bytes, arm timers and emit.
May import: thor.events, thor.loop, thor.tcp, thor.tls (lazily), thor.http2.client (lazily,
for ``h2c`` origins and ALPN ``h2``), thor.memo, thor.http.error, thor.http.headers,
thor.http.protocol. See docs/http-client.md.
"""

from thor.http.client.client import HttpClient
from thor.http.client.exchange import HttpClientExchange

__all__ = ["HttpClient", "HttpClientExchange"]
