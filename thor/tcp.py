"""TCP on the loop: :class:`TcpConnection`, :class:`TcpServer`, :class:`TcpClient`.

One module per concept (``tcp_connection``, ``tcp_server``, ``tcp_client``);
import them from here.  ``listening_socket`` and ``unix_listening_socket``
make the listening sockets a :class:`TcpServer` would (for a process that
binds before it forks its workers).  :class:`ProxyProtocol` is the server option that
reads a PROXY protocol header first (:mod:`thor.tcp_proxy_protocol`).  The
connection's events and flow control are described in :mod:`thor.tcp_connection`.
"""

from __future__ import annotations

from thor._sockets import listening_socket, unix_listening_socket
from thor.tcp_client import TcpClient
from thor.tcp_connection import ConnState, TcpConnection
from thor.tcp_proxy_protocol import ProxyProtocol
from thor.tcp_server import TcpServer

__all__ = [
    "ConnState",
    "ProxyProtocol",
    "TcpClient",
    "TcpConnection",
    "TcpServer",
    "listening_socket",
    "unix_listening_socket",
]
