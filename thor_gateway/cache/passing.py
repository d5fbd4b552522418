"""Passing: a miss for a URL whose responses are not stored, relayed with no cache work.

When a fetched response may not be stored because of its own Cache-Control (``no-store``
or ``private``: RFC 9111 §3, §5.2.2.5, §5.2.2.7), the cache remembers that field value for
the URL (:func:`pass_mark`).  The next plain GET for it (no directives, conditionals or
range in the request) goes to the inner handler with a :class:`Pass` in place of a
:class:`~thor_gateway.cache.fetch.Fetch` (a proxy relays on the client's exchange and
gives the response head's fields to ``Pass.relayed``; another handler answers on a
:class:`Passing` around the client's exchange, which does the same): the request's events
are the client exchange's own, the response goes to the client as it comes with its
Cache-Status, and nothing is copied, stored or waited for (nobody waits for it either: it
will not be stored).  If the response's Cache-Control is not the remembered one (or a
Surrogate-Control appears), the mark is dropped, and the next request is a miss that may
store again; this one is relayed unstored, which a cache may always do (§3: "MAY store").
Like Varnish's hit-for-miss, without its timer: the response itself says when the mark no
longer holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thor.http.exchange import Exchange
from thor_gateway.cache.fetch import Watching
from thor_gateway.cache.heads import Mark, analyse, pass_mark

if TYPE_CHECKING:
    from thor_gateway.cache.handler import CacheHandler

__all__ = ["Mark", "Pass", "Passing", "Relayed", "pass_mark"]

Headers = list[tuple[bytes, bytes]]
# What a passed response's head goes through: (status, fields) -> the fields to send
Relayed = Callable[[int, Headers], Headers]


class Pass:
    """One passed miss: what its response head is given to on its way to the client.

    A proxy relays the head's fields through :meth:`relayed` itself (``cache_pass``: the
    client's exchange is its own, not wrapped); any other handler answers on a
    :class:`Passing`, which does the same."""

    __slots__ = ("cache", "key", "mark")

    def __init__(self, cache: CacheHandler, key: bytes, mark: Mark) -> None:
        self.cache = cache
        self.key = key
        self.mark = mark

    def relayed(self, code: int, fields: Headers) -> Headers:
        """The fields the client gets: with the Cache-Status of a miss not stored.  The
        head's analysis (heads.py: from its memo, as a Fetch has it) holds the mark the
        response would make: when it is not this one, the URL is asked again next time."""
        head = analyse(code, fields)
        if head.mark != self.mark:
            self.cache.passes.pop(self.key, None)
        return [*fields, head.cache_status[0][0]]


class Passing(Watching):
    """The client's exchange, as an inner handler other than the proxy sees it for a passed
    miss."""

    __slots__ = ("_relayed", "response_body", "response_done")

    def __init__(self, exchange: Exchange, relayed: Relayed) -> None:
        Watching.__init__(self, exchange)
        self._relayed = relayed
        # The client's own methods: the body goes with no frame here.
        self.response_body = exchange.response_body
        self.response_done = exchange.response_done

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        code = int(status)
        self._exchange.response_start(code, phrase, self._relayed(code, headers))
