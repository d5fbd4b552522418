"""Sans-IO PROXY protocol (HAProxy's, versions 1 and 2): a header parser fed bytes.

Nothing in this package does IO (a test checks its imports); a server reads the header
with :class:`thor.tcp.ProxyProtocol` (:mod:`thor.tcp_proxy_protocol`).  See docs/tcp.md.
"""

from thor.proxy_protocol.parser import (
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    AddressError,
    Family,
    FamilyError,
    HeaderTooLongError,
    PortError,
    ProxyHeader,
    ProxyHeaderParser,
    ProxyProtocolError,
    SignatureError,
    Transport,
    VersionError,
)

__all__ = [
    "V1_MAX_LENGTH",
    "V2_SIGNATURE",
    "AddressError",
    "Family",
    "FamilyError",
    "HeaderTooLongError",
    "PortError",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "SignatureError",
    "Transport",
    "VersionError",
]
