"""Thor's HTTP server: accepts connections, serves HTTP/1.1, hands switched connections over.

Modules, each importing only the ones after it (a test checks it)::

    server.py      HttpServer: listening, the ALPN registry (``protocols``), shutdown
    connection.py  HttpServerConnection: one HTTP/1.1 connection's IO (bytes, deadline, events)
    exchange.py    HttpServerExchange: one request and its response; SwitchedConnection
    h2c.py         (for connection.py) the HTTP/2 preface, and Upgrade: h2c requests
    rates.py       (for connection.py) minimum data rates, measured over windows

The protocol decisions are made in the sans-IO :mod:`thor.http.protocol`; this package may
import it, ``thor.events``, ``thor.loop``, ``thor.tcp`` (``thor.tls`` lazily) and
``thor.http.error`` / ``headers`` / ``exchange``, never ``thor.http.client`` or the gateway.
``from thor.http.server import HttpServer, HttpServerExchange`` works as in Thor 0.17.
"""

from thor.http.server.connection import HttpServerConnection
from thor.http.server.exchange import ClientGoneError, HttpServerExchange, SwitchedConnection
from thor.http.server.server import H2, HTTP11, HttpServer, ProtocolConnection

__all__ = [
    "H2",
    "HTTP11",
    "ClientGoneError",
    "HttpServer",
    "HttpServerConnection",
    "HttpServerExchange",
    "ProtocolConnection",
    "SwitchedConnection",
]
