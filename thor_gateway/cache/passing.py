"""Passing: a miss for a URL whose responses are not stored, relayed with no cache work.

When a fetched response may not be stored because of its own Cache-Control (``no-store``
or ``private``: RFC 9111 §3, §5.2.2.5, §5.2.2.7), the cache remembers that field value for
the URL (:func:`pass_mark`).  The next plain GET for it (no directives, conditionals or
range in the request) goes to the inner handler on a :class:`Passing` in place of a
:class:`~thor_gateway.cache.fetch.Fetch`: the request's events are the client exchange's
own, the response goes to the client as it comes with its Cache-Status, and nothing is
copied, stored or waited for (nobody waits for it either: it will not be stored).  If the
response's Cache-Control is not the remembered one (or a Surrogate-Control appears), the
mark is dropped, and the next request is a miss that may store again; this one is relayed
unstored, which a cache may always do (§3: "MAY store").  Like Varnish's hit-for-miss,
without its timer: the response itself says when the mark no longer holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thor.http.exchange import Exchange
from thor_gateway.cache.fetch import Watching
from thor_gateway.cache.heads import Mark, analyse, pass_mark

if TYPE_CHECKING:
    from thor_gateway.cache.handler import CacheHandler

__all__ = ["Mark", "Passing", "pass_mark"]


class Passing(Watching):
    """The client's exchange, as the inner handler sees it for a passed miss."""

    __slots__ = ("_cache", "_key", "_mark", "response_body", "response_done")

    def __init__(self, exchange: Exchange, cache: CacheHandler, key: bytes, mark: Mark) -> None:
        Watching.__init__(self, exchange)
        self._cache = cache
        self._key = key
        self._mark = mark
        # The client's own methods: the body goes with no frame here.
        self.response_body = exchange.response_body
        self.response_done = exchange.response_done

    def response_start(self, status: Any, phrase: Any, headers: Any) -> None:
        # The head's analysis (heads.py: from its memo, as a Fetch has it) holds the mark the
        # response would make, and the Cache-Status of a miss not stored.
        code = int(status)
        head = analyse(code, headers)
        if head.mark != self._mark:
            self._cache.passes.pop(self._key, None)  # ask again next time
        self._exchange.response_start(code, phrase, [*headers, head.cache_status[0][0]])
