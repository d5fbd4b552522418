"""The cache handler against a fake inner handler and fake exchanges: no sockets, a set clock.

The inner handler counts what reaches it, so each test says exactly when the "origin" is
asked; the clock is a number the test moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from thor.events import EventEmitter
from thor_gateway.cache import CacheHandler, MemoryStore
from thor_gateway.cache.rules import http_date
from thor_gateway.routing.request import Request, request_at_mount

H = list[tuple[bytes, bytes]]
T0 = 1_700_000_000.0


class FakeExchange(EventEmitter):
    """What a client sees: the response as the cache wrote it."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 0
        self.headers: H = []
        self.body = b""
        self.finished = False
        self.aborted = False
        self.started = False

    def response_start(self, status: int, phrase: bytes, headers: H) -> None:
        assert not self.started, "two response heads"
        self.started = True
        self.status = int(status)
        self.headers = list(headers)

    def response_body(self, chunk: bytes) -> None:
        assert self.started
        self.body += chunk

    def response_done(self, trailers: H, close: bool = False) -> None:
        assert not self.finished
        self.finished = True

    def abort(self) -> None:
        self.aborted = True

    def set_write_buffer_limit(self, high: int) -> None:
        self.write_limit = high

    def header(self, name: bytes) -> bytes | None:
        found = [v for n, v in self.headers if n.lower() == name.lower()]
        return found[0] if found else None


Reply = tuple[int, H, bytes]


class Origin:
    """The inner handler: answers from ``reply(request)``, or holds the exchange if None."""

    def __init__(self, reply: Callable[[Request], Reply | None]) -> None:
        self.reply = reply
        self.seen: list[Request] = []
        self.held: list[tuple[Any, Request]] = []

    def handle(self, exchange: Any, request: Request) -> None:
        self.seen.append(request)
        answer = self.reply(request)
        if answer is None:
            self.held.append((exchange, request))
            return
        send(exchange, answer)

    def startup(self, done: Any) -> None:
        done(None)

    def shutdown(self, done: Any) -> None:
        done(None)


def send(exchange: Any, answer: Reply) -> None:
    status, headers, body = answer
    exchange.response_start(status, b"X", headers)
    if body:
        exchange.response_body(body)
    exchange.response_done([])


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    reply: Callable[[Request], Reply | None], clock: Clock, **settings: Any
) -> tuple[CacheHandler, Origin]:
    origin = Origin(reply)
    cache = CacheHandler(origin, clock=clock, **settings)
    return cache, origin


def get(
    cache: CacheHandler, target: bytes = b"/a", method: bytes = b"GET", *more: tuple[bytes, bytes]
) -> FakeExchange:
    exchange = FakeExchange()
    headers = [(b"Host", b"example.com"), *more]
    cache.handle(exchange, request_at_mount(exchange, method, target, headers))  # type: ignore[arg-type]
    return exchange


def fresh(seconds: int, clock: Clock, *more: tuple[bytes, bytes]) -> Callable[[Request], Reply]:
    counter = iter(range(1, 1000))

    def reply(request: Request) -> Reply:
        headers = [
            (b"Cache-Control", b"max-age=%d" % seconds),
            (b"Date", http_date(clock.now)),
            (b"ETag", b'"v1"'),
            *more,
        ]
        return 200, headers, b"body %d" % next(counter)

    return reply


def test_a_hit_never_reaches_the_origin(clock: Clock) -> None:
    cache, origin = make(fresh(60, clock), clock)
    first = get(cache)
    assert first.header(b"Cache-Status") == b"thor; fwd=miss; fwd-status=200; stored"
    clock.now += 10
    second = get(cache)
    assert len(origin.seen) == 1
    assert second.body == first.body == b"body 1"
    assert second.header(b"Age") == b"10"
    assert second.header(b"Cache-Status") == b"thor; hit"
    assert second.header(b"Content-Length") == b"6"
    assert cache.stats.hits == 1
    assert cache.stats.misses == 1


def test_head_is_answered_from_a_stored_get_and_fills_it(clock: Clock) -> None:
    cache, origin = make(fresh(60, clock), clock)
    head = get(cache, b"/a", b"HEAD")
    assert [r.method for r in origin.seen] == [b"GET"]  # the GET a HEAD stands for
    assert head.body == b""
    assert head.status == 200
    again = get(cache, b"/a", b"HEAD")
    got = get(cache)
    assert len(origin.seen) == 1
    assert again.body == b""
    assert got.body == b"body 1"


def test_stale_is_validated_and_a_304_freshens_the_stored_response(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        conditional = {n.lower(): v for n, v in request.headers}.get(b"if-none-match")
        if conditional == b'"v1"':
            return 304, [(b"Cache-Control", b"max-age=100"), (b"X-New", b"1")], b""
        return 200, [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"v1"')], b"stored"

    cache, origin = make(reply, clock)
    get(cache)
    clock.now += 20
    second = get(cache)
    assert len(origin.seen) == 2
    assert second.status == 200
    assert second.body == b"stored"
    assert second.header(b"X-New") == b"1"
    assert second.header(b"Cache-Status") == b"thor; fwd=stale; fwd-status=304"
    clock.now += 50  # fresh again under the new max-age
    third = get(cache)
    assert len(origin.seen) == 2
    assert third.header(b"Cache-Control") == b"max-age=100"


def test_the_clients_own_conditional_is_answered_by_the_cache(clock: Clock) -> None:
    cache, origin = make(fresh(60, clock), clock)
    miss = get(cache, b"/a", b"GET", (b"If-None-Match", b'"v1"'))
    # the origin was asked for the whole response (to store it), the client got its 304
    assert not any(n.lower() == b"if-none-match" for n, _ in origin.seen[0].headers)
    assert miss.status == 304
    assert miss.body == b""
    hit = get(cache, b"/a", b"GET", (b"If-None-Match", b'"v0"'))
    assert hit.status == 200
    assert len(origin.seen) == 1


def test_no_store_private_and_authorization_are_not_stored(clock: Clock) -> None:
    cache, origin = make(fresh(60, clock, (b"Cache-Control", b"private")), clock)
    # the first Cache-Control wins for max-age, private still counts
    get(cache)
    get(cache)
    assert len(origin.seen) == 2
    cache, origin = make(fresh(60, clock), clock)
    get(cache, b"/a", b"GET", (b"Authorization", b"Basic eDp5"))
    get(cache, b"/a", b"GET", (b"Authorization", b"Basic eDp5"))
    assert len(origin.seen) == 2
    get(cache, b"/a", b"GET", (b"Cache-Control", b"no-store"))
    get(cache)
    assert len(origin.seen) == 4


def test_request_directives(clock: Clock) -> None:
    cache, origin = make(fresh(60, clock), clock)
    get(cache)
    clock.now += 30
    get(cache, b"/a", b"GET", (b"Cache-Control", b"max-age=10"))
    assert len(origin.seen) == 2
    get(cache, b"/a", b"GET", (b"Cache-Control", b"no-cache"))
    assert len(origin.seen) == 3
    clock.now += 100
    stale = get(cache, b"/a", b"GET", (b"Cache-Control", b"max-stale=200"))
    assert len(origin.seen) == 3
    assert stale.header(b"Cache-Status") == b"thor; hit"
    missing = get(cache, b"/other", b"GET", (b"Cache-Control", b"only-if-cached"))
    assert missing.status == 504
    assert len(origin.seen) == 3


def test_vary_keeps_one_response_per_variant(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        lang = {n.lower(): v for n, v in request.headers}.get(b"accept-language", b"-")
        headers = [(b"Cache-Control", b"max-age=60"), (b"Vary", b"Accept-Language")]
        return 200, headers, lang

    cache, origin = make(reply, clock)
    assert get(cache, b"/a", b"GET", (b"Accept-Language", b"fr")).body == b"fr"
    assert get(cache, b"/a", b"GET", (b"Accept-Language", b"de")).body == b"de"
    assert get(cache, b"/a", b"GET", (b"Accept-Language", b"fr")).body == b"fr"
    assert get(cache).body == b"-"
    assert len(origin.seen) == 3


def test_a_stored_language_answers_requests_that_would_choose_it(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        headers = [
            (b"Cache-Control", b"max-age=60"),
            (b"Vary", b"Accept-Language"),
            (b"Content-Language", b"de"),
        ]
        return 200, headers, b"de %d" % len(origin.seen)

    cache, origin = make(reply, clock)
    assert get(cache, b"/a", b"GET", (b"Accept-Language", b"en, de")).body == b"de 1"
    again = get(cache, b"/a", b"GET", (b"Accept-Language", b"fr;q=0.5, de;q=1.0"))
    assert (again.body, again.header(b"Cache-Status")) == (b"de 1", b"thor; hit")
    assert get(cache, b"/a", b"GET", (b"Accept-Language", b"fr, de")).body == b"de 2"
    assert len(origin.seen) == 2


def test_unsafe_methods_invalidate(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        if request.method == b"POST":
            return 201, [(b"Location", b"/b"), (b"Content-Length", b"0")], b""
        return fresh(60, clock)(request)

    cache, origin = make(reply, clock)
    get(cache, b"/a")
    get(cache, b"/b")
    get(cache, b"/c")
    post = get(cache, b"/a", b"POST")
    assert post.status == 201
    get(cache, b"/a")
    get(cache, b"/b")
    get(cache, b"/c")
    assert [r.target for r in origin.seen] == [b"/a", b"/b", b"/c", b"/a", b"/a", b"/b"]
    assert cache.stats.bypass == 1


@pytest.mark.parametrize(
    "located",
    [
        [(b"LOCATION", b"/b")],  # any case
        [("Location", "/b")],  # str fields, as a mounted app may answer
        [(b"Content-Location", b"/b"), ("X-Other", b"x")],  # one of them str
    ],
)
def test_the_location_fields_of_an_unsafe_answer_are_found_in_any_form(
    clock: Clock, located: list[tuple[Any, Any]]
) -> None:
    # RFC 9111 §4.4: Location and Content-Location of the same origin are invalidated too;
    # the answer's fields are looked through once, bytes or str, in any case.
    def reply(request: Request) -> Reply:
        if request.method == b"POST":
            return 201, [*located, (b"Content-Length", b"0")], b""
        return fresh(60, clock)(request)

    cache, origin = make(reply, clock)
    get(cache, b"/b")
    get(cache, b"/c")
    get(cache, b"/a", b"POST")
    get(cache, b"/b")
    get(cache, b"/c")
    assert [r.target for r in origin.seen] == [b"/b", b"/c", b"/a", b"/b"]


def test_collapsed_forwarding_waits_for_one_fetch(clock: Clock) -> None:
    cache, origin = make(lambda request: None, clock)
    clients = [get(cache) for _ in range(5)]
    assert len(origin.seen) == 1
    assert not any(c.started for c in clients[1:])
    exchange, _ = origin.held.pop()
    send(exchange, (200, [(b"Cache-Control", b"max-age=60")], b"once"))
    assert [c.body for c in clients] == [b"once"] * 5
    assert all(c.finished for c in clients)
    assert len(origin.seen) == 1
    assert cache.stats.hits == 4


def test_waiters_go_on_their_own_when_the_response_is_not_stored(clock: Clock) -> None:
    cache, origin = make(lambda request: None, clock)
    clients = [get(cache) for _ in range(3)]
    exchange, _ = origin.held.pop()
    send(exchange, (200, [(b"Cache-Control", b"no-store")], b"private"))
    assert clients[0].body == b"private"
    assert len(origin.seen) == 3  # each waiter asked for itself, once
    for exchange, _ in origin.held:
        send(exchange, (200, [(b"Cache-Control", b"no-store")], b"again"))
    assert [c.body for c in clients] == [b"private", b"again", b"again"]


def test_bodies_larger_than_the_limit_stream_through_uncached(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        return 200, [(b"Cache-Control", b"max-age=60")], b"x" * 5000

    cache, origin = make(reply, clock, max_object_size=1000)
    assert len(get(cache).body) == 5000
    assert len(get(cache).body) == 5000
    assert len(origin.seen) == 2
    assert cache.samples()["bytes"] == 0


def test_the_byte_budget_evicts_the_least_recently_used(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        return 200, [(b"Cache-Control", b"max-age=60")], b"x" * 1000

    cache, origin = make(reply, clock, max_size=3000)  # room for two such responses
    for target in (b"/1", b"/2", b"/1", b"/3", b"/1", b"/2"):
        get(cache, target)
    # /1 was used after /2, so /3 evicted /2
    assert [r.target for r in origin.seen] == [b"/1", b"/2", b"/3", b"/2"]
    assert isinstance(cache.store, MemoryStore)
    assert cache.store.bytes <= 3000


def test_stale_while_revalidate_serves_and_refreshes_behind(clock: Clock) -> None:
    counter = iter(range(1, 10))

    def reply(request: Request) -> Reply:
        cc = b"max-age=10, stale-while-revalidate=60"
        return 200, [(b"Cache-Control", cc), (b"Date", http_date(clock.now))], b"%d" % next(counter)

    cache, origin = make(reply, clock)
    get(cache)
    clock.now += 20
    stale = get(cache)
    assert stale.body == b"1"  # served at once, stale
    assert len(origin.seen) == 2  # and fetched behind it
    assert get(cache).body == b"2"


def test_stale_if_error(clock: Clock) -> None:
    answers = iter(
        [
            (200, [(b"Cache-Control", b"max-age=10, stale-if-error=60"), (b"ETag", b'"a"')], b"ok"),
            (503, [(b"Content-Length", b"0")], b""),
        ]
    )
    cache, _origin = make(lambda request: next(answers), clock)
    get(cache)
    clock.now += 20
    served = get(cache)
    assert served.status == 200
    assert served.body == b"ok"
    assert served.header(b"Cache-Status") == b"thor; fwd=stale; fwd-status=503"


def test_a_client_that_leaves_cancels_a_fetch_nobody_else_waits_for(clock: Clock) -> None:
    cache, origin = make(lambda request: None, clock)
    client = get(cache)
    fetch, _ = origin.held.pop()
    cancelled: list[bool] = []
    fetch.on("done", cancelled.append)
    client.emit("done", False)
    assert cancelled == [False]
    assert cache.pending == {}
    get(cache)  # not stuck behind the abandoned fetch
    assert len(origin.seen) == 2


def test_a_client_that_stops_reading_pauses_the_fetch(clock: Clock) -> None:
    # Flow control through the cache: the client's pause reaches the exchange the inner
    # handler answers on (a proxy's relay stops reading upstream), and so does its resume;
    # once the response is over there is nothing left to steer.
    cache, origin = make(lambda request: None, clock)
    client = get(cache)
    fetch, _ = origin.held.pop()
    paused: list[bool] = []
    fetch.on("pause", paused.append)
    fetch.response_start(200, b"OK", [(b"Cache-Control", b"max-age=60")])
    client.emit("pause", True)
    client.emit("pause", False)
    assert paused == [True, False]
    fetch.response_body(b"abc")
    fetch.response_done([])
    client.emit("pause", True)
    assert paused == [True, False]
    assert client.body == b"abc"


def test_a_body_within_the_inner_handler_s_bound_is_relayed_without_pauses(clock: Clock) -> None:
    # A proxy bounds what one response may leave in the client's buffer (its write limit):
    # a fetched body whose Content-Length has fewer digits than that bound is held whole
    # within it, and the Fetch does not listen for the client's pauses; a longer one, or
    # one of unknown length, is paused as the client pauses.
    origin = Origin(lambda request: None)
    origin.write_limit = 4096  # type: ignore[attr-defined]  # (as ProxyHandler has it)
    cache = CacheHandler(origin, clock=clock)
    for length, listened in ((b"999", False), (b"1000", True), (None, True)):
        client = get(cache, b"/%d" % len(length or b""))
        fetch, _ = origin.held.pop()
        paused: list[bool] = []
        fetch.on("pause", paused.append)
        fields = [(b"Cache-Control", b"max-age=60")]
        if length is not None:
            fields.append((b"Content-Length", length))
        fetch.response_start(200, b"OK", fields)
        client.emit("pause", True)
        assert paused == ([True] if listened else []), length
        client.emit("pause", False)


def test_a_fetch_others_wait_for_goes_on_when_its_client_leaves(clock: Clock) -> None:
    cache, origin = make(lambda request: None, clock)
    leaving = get(cache)
    waiting = get(cache)
    fetch, _ = origin.held.pop()
    leaving.emit("done", False)
    send(fetch, (200, [(b"Cache-Control", b"max-age=60")], b"kept"))
    assert not leaving.started
    assert waiting.body == b"kept"
    assert len(origin.seen) == 1


def test_an_inner_handler_that_raises_leaves_no_one_waiting(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        raise RuntimeError("broken")

    cache, _ = make(reply, clock)
    with pytest.raises(RuntimeError):
        get(cache)
    assert cache.pending == {}


def test_ranges_are_served_from_a_complete_stored_response(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        return 200, [(b"Cache-Control", b"max-age=60")], b"0123456789"

    cache, origin = make(reply, clock)
    ranged = get(cache, b"/a", b"GET", (b"Range", b"bytes=2-4"))
    assert (b"Range", b"bytes=2-4") in origin.seen[0].headers  # fetched with its range
    assert ranged.status == 200  # the origin ignored the range: the whole is stored
    part = get(cache, b"/a", b"GET", (b"Range", b"bytes=2-4"))
    assert part.status == 206
    assert part.body == b"234"
    assert part.header(b"Content-Range") == b"bytes 2-4/10"
    suffix = get(cache, b"/a", b"GET", (b"Range", b"bytes=-3"))
    assert suffix.body == b"789"
    beyond = get(cache, b"/a", b"GET", (b"Range", b"bytes=20-"))
    assert beyond.status == 416
    assert beyond.header(b"Content-Range") == b"bytes */10"
    several = get(cache, b"/a", b"GET", (b"Range", b"bytes=0-1,3-4"))
    assert several.status == 200
    assert several.body == b"0123456789"
    assert len(origin.seen) == 1


@pytest.mark.parametrize(
    ("setting", "cache_control", "served"),
    [
        (True, b"max-age=10", 200),
        (False, b"max-age=10", 502),
        (True, b"max-age=10, must-revalidate", 502),
        (True, b"max-age=10, no-cache", 502),
    ],
)
def test_stale_when_the_upstream_cannot_be_reached(
    clock: Clock, setting: bool, cache_control: bytes, served: int
) -> None:
    answers = iter(
        [
            (
                200,
                [(b"Cache-Control", cache_control), (b"ETag", b'"a"'), (b"Via", b"1.1 thor")],
                b"ok",
            ),
            # the proxy's own 502: no upstream answered, so no Via
            (502, [(b"Content-Length", b"0")], b""),
        ]
    )
    cache, _ = make(lambda request: next(answers), clock, stale_on_disconnect=setting)
    get(cache)
    clock.now += 20
    assert get(cache).status == served


def test_a_single_part_is_stored_and_serves_the_ranges_it_holds(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        headers = [(b"Cache-Control", b"max-age=60"), (b"Content-Range", b"bytes 4-9/10")]
        return 206, headers, b"456789"

    cache, origin = make(reply, clock)
    assert get(cache, b"/a", b"GET", (b"Range", b"bytes=-6")).body == b"456789"
    inner = get(cache, b"/a", b"GET", (b"Range", b"bytes=6-8"))
    assert inner.status == 206
    assert inner.body == b"678"
    assert inner.header(b"Content-Range") == b"bytes 6-8/10"
    assert get(cache, b"/a", b"GET", (b"Range", b"bytes=-1")).body == b"9"
    assert len(origin.seen) == 1
    get(cache, b"/a", b"GET", (b"Range", b"bytes=0-1"))  # not held: fetched
    assert len(origin.seen) == 2
    whole = get(cache)  # a part never answers a request for the whole
    assert len(origin.seen) == 3
    assert whole.status == 206  # (what this fake origin answers to anything)
    cache.invalidate([b"http://example.com/a"])
    get(cache, b"/a", b"GET", (b"Range", b"bytes=6-8"))
    assert len(origin.seen) == 4


def test_a_part_that_is_not_what_its_content_range_says_is_not_stored(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        headers = [(b"Cache-Control", b"max-age=60"), (b"Content-Range", b"bytes 4-9/10")]
        return 206, headers, b"01234"  # five bytes for a six-byte range

    cache, origin = make(reply, clock)
    get(cache, b"/a", b"GET", (b"Range", b"bytes=-6"))
    get(cache, b"/a", b"GET", (b"Range", b"bytes=6-8"))
    assert len(origin.seen) == 2


def test_a_post_response_that_names_its_url_is_kept_for_gets(clock: Clock) -> None:
    def reply(request: Request) -> Reply:
        if request.method == b"POST":
            located = request.target if request.target != b"/other" else b"/elsewhere"
            return (
                200,
                [(b"Cache-Control", b"max-age=60"), (b"Content-Location", located)],
                b"posted",
            )
        return fresh(60, clock)(request)

    cache, origin = make(reply, clock)
    assert get(cache, b"/a", b"POST").body == b"posted"
    got = get(cache, b"/a")
    assert got.body == b"posted"
    assert got.header(b"Cache-Status") == b"thor; hit"
    get(cache, b"/other", b"POST")
    assert get(cache, b"/other").body == b"body 1"  # named another URL: not kept
    assert len(origin.seen) == 3


def test_requests_for_an_expired_response_wait_for_one_validation(clock: Clock) -> None:
    answers: list[Reply | None] = [
        (200, [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"a"')], b"v")
    ]
    cache, origin = make(lambda request: answers.pop() if answers else None, clock)
    get(cache)
    clock.now += 20
    clients = [get(cache) for _ in range(4)]
    assert len(origin.seen) == 2  # one validation for the four
    exchange, request = origin.held.pop()
    assert (b"If-None-Match", b'"a"') in request.headers
    send(exchange, (304, [(b"Cache-Control", b"max-age=10")], b""))
    assert [c.body for c in clients] == [b"v"] * 4
    assert len(origin.seen) == 2


def test_a_url_whose_responses_are_not_stored_is_passed_until_they_change(clock: Clock) -> None:
    # passing.py: after a no-store response, the next plain GETs go to the origin with the
    # client's own exchange (no Fetch); a different Cache-Control ends that.
    control = [b"no-store"]

    def reply(request: Request) -> Reply:
        return 200, [(b"Cache-Control", control[0]), (b"Date", http_date(clock.now))], b"hi"

    cache, origin = make(reply, clock)
    kinds: list[str] = []
    handle = origin.handle

    def watched(exchange: Any, request: Request) -> None:
        kinds.append(type(exchange).__name__)
        handle(exchange, request)

    origin.handle = watched  # type: ignore[method-assign]
    first = get(cache)
    assert cache.passes == {b"http://example.com/a": (b"no-store",)}
    second = get(cache)
    assert kinds == ["FetchExchange", "Passing"]
    assert len(origin.seen) == 2
    assert second.body == b"hi"
    assert second.finished
    for client in (first, second):
        assert client.header(b"Cache-Status") == b"thor; fwd=miss; fwd-status=200"
    # the passed request still goes upstream as the cache's own (Surrogate-Capability)
    assert (b"Surrogate-Capability", b'thor="Surrogate/1.0"') in origin.seen[1].headers
    assert cache.pending == {}
    # a client that asks something of the cache (a conditional) gets a full Fetch
    get(cache, b"/a", b"GET", (b"If-None-Match", b'"x"'))
    assert cache.passes  # the same answer: still passed
    control[0] = b"max-age=60"
    changed = get(cache)  # relayed unstored, the mark dropped
    assert changed.header(b"Cache-Status") == b"thor; fwd=miss; fwd-status=200"
    assert cache.passes == {}
    assert get(cache).header(b"Cache-Status") == b"thor; fwd=miss; fwd-status=200; stored"
    assert get(cache).header(b"Cache-Status") == b"thor; hit"
    assert len(origin.seen) == 5
    assert kinds == ["FetchExchange", "Passing", "FetchExchange", "Passing", "FetchExchange"]


def test_only_the_responses_own_directives_make_a_pass(clock: Clock) -> None:
    # must-understand makes no-store depend on the status, Surrogate-Control may override
    # it: neither is remembered; nor is a response the request's no-store kept out.
    for more in [
        [(b"Cache-Control", b"no-store, must-understand")],
        [(b"Cache-Control", b"no-store"), (b"Surrogate-Control", b"max-age=0")],
        [(b"Cache-Control", b"max-age=0, no-cache")],
    ]:
        cache, _ = make(lambda request, more=more: (200, more, b"x"), clock)  # type: ignore[misc]
        get(cache)
        assert cache.passes == {}, more
    cache, _ = make(fresh(60, clock), clock)
    get(cache, b"/a", b"GET", (b"Cache-Control", b"no-store"))
    assert cache.passes == {}


def test_a_fetch_that_stores_ends_the_pass(clock: Clock) -> None:
    # A marked URL has nothing stored (handle() looks for the mark before the store).
    control = [b"no-store"]
    cache, _ = make(lambda request: (200, [(b"Cache-Control", control[0])], b"x"), clock)
    get(cache)
    assert cache.passes
    control[0] = b"max-age=60"
    get(cache, b"/a", b"GET", (b"If-None-Match", b'"x"'))  # not plain: a Fetch, which stores
    assert cache.passes == {}
    assert get(cache).header(b"Cache-Status") == b"thor; hit"
