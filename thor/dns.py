"""Asynchronous name resolution for the loop.

``lookup(host, port, callback)`` resolves through the system resolver
(``getaddrinfo``, so ``/etc/hosts``, nsswitch and search domains apply) in a
small thread pool, and calls ``callback(results)`` on the loop thread, or
``callback(error)`` with a :class:`DnsError`.  IP literals are answered
without a lookup.  Answers are kept for ``cache_ttl`` seconds (positive
answers only), and concurrent lookups of one name share one query.

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
_cache: dict[_Key, tuple[float, list[DnsResult]]] = {}
_pending: dict[_Key, list[Callback]] = {}


class DnsError(OSError):
    """A name could not be resolved; ``errno`` is the ``getaddrinfo`` error code."""


def _literal(host: str, port: int, socktype: int) -> list[DnsResult] | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    kind = socket.SocketKind(socktype)
    proto = socket.IPPROTO_UDP if kind == socket.SOCK_DGRAM else socket.IPPROTO_TCP
    if address.version == 6:
        return [(socket.AF_INET6, kind, proto, "", (str(address), port, 0, 0))]
    return [(socket.AF_INET, kind, proto, "", (str(address), port))]


def lookup(
    host: str | bytes,
    port: int,
    callback: Callback,
    *,
    loop: thor.loop.Loop | None = None,
    family: int = socket.AF_UNSPEC,
    socktype: int = socket.SOCK_STREAM,
) -> None:
    """Resolve ``host`` and call ``callback`` on the loop thread with the results."""
    the_loop = loop or thor.loop._loop
    name = host.decode("idna") if isinstance(host, bytes) else host
    literal = _literal(name, port, socktype)
    if literal is not None:
        the_loop.call_soon(callback, literal)
        return
    key = (name.lower(), port, family, socktype)
    cached = _cache.get(key)
    if cached is not None:
        if cached[0] > the_loop.time():
            the_loop.call_soon(callback, cached[1])
            return
        del _cache[key]
    waiting = _pending.get(key)
    if waiting is not None:
        waiting.append(callback)
        return
    _pending[key] = [callback]
    future: Future[list[DnsResult]] = _pool().submit(_getaddrinfo, name, port, family, socktype)

    def resolved(future: Future[list[DnsResult]]) -> None:  # runs in a pool thread
        the_loop.run_in_loop(_deliver, the_loop, key, future)

    future.add_done_callback(resolved)


def _getaddrinfo(name: str, port: int, family: int, socktype: int) -> list[DnsResult]:
    return list(socket.getaddrinfo(name, port, family, socktype))


def _deliver(loop: thor.loop.Loop, key: _Key, future: Future[list[DnsResult]]) -> None:
    callbacks = _pending.pop(key, [])
    error = future.exception()
    outcome: list[DnsResult] | Exception
    if error is None:
        outcome = future.result()
        if cache_ttl > 0:
            _cache[key] = (loop.time() + cache_ttl, outcome)
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
