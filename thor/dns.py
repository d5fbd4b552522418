"""Asynchronous name resolution for the loop.

``lookup(host, port, callback)`` resolves through the system resolver
(``getaddrinfo``, so ``/etc/hosts``, nsswitch and search domains apply) in a
small thread pool, and calls ``callback(results)`` on the loop thread, or
``callback(error)`` with a :class:`DnsError`.  IP literals are answered
without a lookup.  Answers are kept for ``cache_ttl`` seconds (positive
answers only; ``getaddrinfo`` does not tell a record's TTL, so this is our
own bound), and concurrent lookups of one name share one query (per loop:
each answer is delivered on the loop that asked for it).  A caller that must
see changes sooner (a proxy re-resolving its upstreams every few seconds)
passes ``max_age``: a cached answer older than that is not used.

The callback is never called before ``lookup`` returns.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import thor.loop

__all__ = ["DnsError", "DnsResult", "cache_ttl", "clear_cache", "lookup", "max_threads"]

DnsResult = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
Callback = Callable[[list[DnsResult] | Exception], Any]
_Key = tuple[str, int, int, int]

cache_ttl = 10.0
max_threads = 4

_executor: ThreadPoolExecutor | None = None
_cache: dict[_Key, tuple[float, list[DnsResult]]] = {}  # key -> (received at, answer)
# Keyed by loop too: a query shared across loops would deliver every answer
# on the first loop's thread, and a query left behind by a closed loop would
# swallow the answers of later lookups of the same name.
_pending: dict[tuple[thor.loop.Loop, _Key], list[Callback]] = {}


class DnsError(OSError):
    """A name could not be resolved; ``errno`` is the ``getaddrinfo`` error code."""


def _literal(host: str, port: int, socktype: int) -> list[DnsResult] | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    if address.version == 6:
        family, sockaddr = socket.AF_INET6, (str(address), port, 0, 0)
    else:
        family, sockaddr = socket.AF_INET, (str(address), port)
    # socktype 0 means any, as in getaddrinfo: answer for streams and datagrams.
    kinds = [socket.SocketKind(socktype)] if socktype else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
    return [
        (
            family,
            kind,
            socket.IPPROTO_UDP if kind == socket.SOCK_DGRAM else socket.IPPROTO_TCP,
            "",
            sockaddr,
        )
        for kind in kinds
    ]


def lookup(
    host: str | bytes,
    port: int,
    callback: Callback,
    *,
    loop: thor.loop.Loop | None = None,
    family: int = socket.AF_UNSPEC,
    socktype: int = socket.SOCK_STREAM,
    max_age: float | None = None,
) -> None:
    """Resolve ``host`` and call ``callback`` on the loop thread with the results.

    ``max_age``: use a cached answer only if it is younger than this many seconds (0:
    always ask the system resolver); None: up to ``cache_ttl``.  A query in flight is
    fresh enough either way, and is shared.
    """
    the_loop = loop or thor.loop.default()
    name = host.decode("idna") if isinstance(host, bytes) else host
    literal = _literal(name, port, socktype)
    if literal is not None:
        the_loop.call_soon(callback, literal)
        return
    key = (name.lower(), port, family, socktype)
    cached = _cache.get(key)
    if cached is not None:
        age = the_loop.time() - cached[0]
        if age < (cache_ttl if max_age is None else min(max_age, cache_ttl)):
            the_loop.call_soon(callback, cached[1])
            return
        if age >= cache_ttl:
            del _cache[key]
    waiting = _pending.get((the_loop, key))
    if waiting is not None:
        waiting.append(callback)
        return
    _pending[(the_loop, key)] = [callback]
    future: Future[list[DnsResult]] = _pool().submit(_getaddrinfo, name, port, family, socktype)

    def resolved(future: Future[list[DnsResult]]) -> None:  # runs in a pool thread
        the_loop.run_in_loop(_deliver, the_loop, key, future)

    future.add_done_callback(resolved)


def _getaddrinfo(name: str, port: int, family: int, socktype: int) -> list[DnsResult]:
    return list(socket.getaddrinfo(name, port, family, socktype))


def _deliver(loop: thor.loop.Loop, key: _Key, future: Future[list[DnsResult]]) -> None:
    callbacks = _pending.pop((loop, key), [])
    error = future.exception()
    outcome: list[DnsResult] | Exception
    if error is None:
        outcome = future.result()
        if cache_ttl > 0:
            _cache[key] = (loop.time(), outcome)
    elif isinstance(error, socket.gaierror):
        outcome = DnsError(error.errno, f"{key[0]}: {error.strerror}")
    else:
        outcome = DnsError(0, f"{key[0]}: {error}")
    for callback in callbacks:
        loop.call_soon(callback, outcome)


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="thor-dns")
    return _executor


def clear_cache() -> None:
    """Forget every cached answer."""
    _cache.clear()
