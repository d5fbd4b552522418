"""What the router hands to an adapter: the parsed request, and the adapter interface.

The router takes each exchange as it arrives (its request head parsed), works
out which mount the request belongs to, and builds a :class:`Request` for the
mounted :class:`Handler`.  Paths are split once, here: ``script_name`` and ``path_info``
are percent-decoded bytes (PEP 3333 turns them into latin-1 ``str``; ASGI
decodes them as UTF-8), while ``raw_path`` keeps the bytes as sent.

Adapters are typed against the library's exchange contract, :class:`thor.http.Exchange`,
never against a connection class, so that an HTTP/2 stream can stand in for an HTTP/1.1
exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote_to_bytes

from thor.http.exchange import Exchange

__all__ = [
    "Done",
    "Handler",
    "Request",
    "asks_websocket",
    "request_at_mount",
    "split_target",
    "target_authority",
    "with_host",
]

Done = Callable[[BaseException | None], None]
RawHeaders = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Request:
    """One request, as routed to one mounted app (the paths: see the module docstring)."""

    method: bytes
    target: bytes
    raw_path: bytes
    query: bytes
    script_name: bytes
    path_info: bytes
    headers: RawHeaders
    http_version: bytes
    scheme: str
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    state: dict[str, object] = field(default_factory=dict)


class Handler(Protocol):
    """What every mounted thing implements: WSGI, ASGI, native apps and the proxy."""

    def handle(self, exchange: Exchange, request: Request) -> None:
        """Serve ``request``; called when the exchange arrives (``request_start`` follows)."""

    def startup(self, done: Done) -> None:
        """Prepare to serve (ASGI lifespan startup); call ``done(None)`` or ``done(exc)``."""

    def shutdown(self, done: Done) -> None:
        """Clean up after draining (ASGI lifespan shutdown); then call ``done``."""


def asks_websocket(headers: RawHeaders) -> bool:
    """Whether a request's ``Upgrade`` field names websocket (RFC 6455 §4.1; GETs only)."""
    # A plain loop: cheaper under callgrind than joining the names for a search in C, and
    # browsers send Upgrade-Insecure-Requests, which such a search cannot tell apart.
    for name, value in headers:
        if len(name) == 7 and name.lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


def address_of(value: object) -> tuple[str, int] | None:
    """(host, port) of an IP socket's address; None for a UNIX socket's ("" or a path)."""
    if value.__class__ is tuple and len(value) >= 2:
        return value[:2]
    return None


def request_at_mount(
    exchange: Exchange,
    method: bytes,
    target: bytes,
    headers: RawHeaders,
    prefix: bytes = b"",
) -> Request:
    """Build the :class:`Request` for a mount at ``prefix`` (decoded, no trailing slash).

    A small stand-in for the router, used by tests and by embedders that mount one
    app; the request path must start with ``prefix`` at a segment boundary.
    """
    raw_path, query = split_target(target)
    decoded = unquote_to_bytes(raw_path)
    if prefix and not (decoded == prefix or decoded.startswith(prefix + b"/")):
        raise ValueError(f"{decoded!r} is not under the mount {prefix!r}")
    return Request(
        method=method,
        target=target,
        raw_path=raw_path,
        query=query,
        script_name=prefix,
        path_info=decoded[len(prefix) :],
        headers=headers,
        http_version=getattr(exchange, "req_version", b"1.1"),
        scheme=getattr(exchange, "scheme", "http"),
        client=address_of(getattr(exchange, "client_address", None)),
        server=address_of(getattr(exchange, "server_address", None)),
    )


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """(raw path, query) of a request-target; absolute-form keeps only its path."""
    raw_path, _, query = target.partition(b"?")
    if raw_path[:1] != b"/" and target_authority(raw_path) is not None:
        # RFC 9112 §3.2.2: a server MUST accept the absolute form; the path starts after
        # the authority.
        slash = raw_path.find(b"/", raw_path.find(b"//") + 2)
        raw_path = raw_path[slash:] if slash >= 0 else b"/"
    return raw_path, query


def target_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form target (``http://host:port/...``), else None."""
    lowered = target[:8].lower()
    if lowered.startswith(b"http://"):
        start = 7
    elif lowered == b"https://":
        start = 8
    else:
        return None
    return target[start:].partition(b"/")[0].partition(b"?")[0]


def with_host(headers: RawHeaders, host: bytes) -> RawHeaders:
    """``headers`` with the Host field's value replaced by ``host`` (added if missing)."""
    if any(n.lower() == b"host" for n, _ in headers):
        return [(n, host if n.lower() == b"host" else v) for n, v in headers]
    return [(b"Host", host), *headers]
