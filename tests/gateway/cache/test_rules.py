"""RFC 9111's rules as pure functions: storing, freshness, age, reuse (no sockets)."""

from __future__ import annotations

import pytest

from thor_gateway.cache.rules import (
    DELTA_MAX,
    HEURISTIC_CAP,
    Reuse,
    current_age,
    delta_seconds,
    directives,
    freshness_lifetime,
    http_date,
    parse_http_date,
    request_directives,
    response_directives,
    reuse,
    stale_if_error,
    storable,
)

H = list[tuple[bytes, bytes]]
T0 = 1_700_000_000.0  # a whole second


def cc(value: str) -> H:
    return [(b"Cache-Control", value.encode())]


# --- Cache-Control --------------------------------------------------------------------------


def test_directives_lowercase_unquote_and_keep_the_first() -> None:
    found = directives(
        [
            (b"Cache-Control", b'Max-Age=60, no-cache="Set-Cookie, X", private'),
            (b"cache-control", b'max-age=5, s-maxage="30"'),
        ]
    )
    assert found == {
        b"max-age": b"60",  # §4.2.1: the first of a repeated directive
        b"no-cache": b"Set-Cookie, X",  # a comma inside quotes separates nothing
        b"private": None,
        b"s-maxage": b"30",
    }


def test_pragma_no_cache_counts_only_without_cache_control() -> None:
    assert b"no-cache" in request_directives([(b"Pragma", b"no-cache")])
    assert b"no-cache" not in request_directives([(b"Pragma", b"no-cache"), *cc("max-age=5")])


@pytest.mark.parametrize(
    ("text", "value"),
    [(b"0", 0), (b"60", 60), (b"99999999999", DELTA_MAX), (b"-1", None), (b"1.5", None)],
)
def test_delta_seconds(text: bytes, value: int | None) -> None:
    assert delta_seconds(text) == value
    assert delta_seconds(None) is None


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        b"Sun Nov  6 08:49:37 1994",  # asctime
    ],
)
def test_the_three_date_formats(text: bytes) -> None:
    assert parse_http_date(text) == 784111777.0
    # a float, as the clock's seconds are (then and from the memo of dates seen)
    assert type(parse_http_date(text)) is float


@pytest.mark.parametrize("text", [b"0", b"", b"yesterday", b"Sun, 32 Nov 1994 08:49:37 GMT"])
def test_not_dates(text: bytes) -> None:
    assert parse_http_date(text) is None


def test_http_date_round_trips() -> None:
    assert http_date(784111777.0) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date(http_date(T0)) == T0


# --- storing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
def test_heuristically_cacheable_statuses_are_stored_without_freshness(status: int) -> None:
    assert storable(b"GET", status, [], [])


@pytest.mark.parametrize("status", [201, 302, 400, 500, 503])
def test_other_statuses_need_explicit_freshness(status: int) -> None:
    assert not storable(b"GET", status, [], [])
    assert storable(b"GET", status, [], cc("max-age=60"))
    assert storable(b"GET", status, [], [(b"Expires", http_date(T0))])


@pytest.mark.parametrize("status", [100, 206, 304])
def test_partial_interim_and_not_modified_are_never_stored(status: int) -> None:
    assert not storable(b"GET", status, [], cc("max-age=60"))


def test_only_get_is_stored() -> None:
    for method in (b"HEAD", b"POST", b"PUT"):
        assert not storable(method, 200, [], cc("max-age=60"))


def test_no_store_and_private_are_not_stored_by_a_shared_cache() -> None:
    assert not storable(b"GET", 200, [], cc("no-store, max-age=60"))
    assert not storable(b"GET", 200, cc("no-store"), cc("max-age=60"))
    assert not storable(b"GET", 200, [], cc("private, max-age=60"))


def test_must_understand_overrides_no_store_for_understood_statuses() -> None:
    assert storable(b"GET", 200, [], cc("must-understand, no-store, max-age=60"))
    assert not storable(b"GET", 299, [], cc("must-understand, no-store, max-age=60"))


def test_authorization_needs_public_s_maxage_or_must_revalidate() -> None:
    auth = [(b"Authorization", b"Basic eDp5")]
    assert not storable(b"GET", 200, auth, cc("max-age=60"))
    for ok in ("public", "s-maxage=60", "must-revalidate, max-age=60"):
        assert storable(b"GET", 200, auth, cc(ok)), ok


def test_vary_star_is_not_stored() -> None:
    assert not storable(b"GET", 200, [], [*cc("max-age=60"), (b"Vary", b"Accept, *")])


def test_surrogate_control_speaks_for_this_cache() -> None:
    headers = [*cc("no-store"), (b"Surrogate-Control", b"max-age=100;thor")]
    assert storable(b"GET", 200, [], headers)
    assert freshness_lifetime(200, headers, T0) == 100.0
    other = [*cc("no-store"), (b"Surrogate-Control", b"max-age=100;edge9")]
    assert not storable(b"GET", 200, [], other)
    refused = [*cc("max-age=60"), (b"Surrogate-Control", b"no-store")]
    assert b"no-store" in response_directives(refused)


# --- freshness lifetime ----------------------------------------------------------------------


def test_s_maxage_beats_max_age_beats_expires() -> None:
    date = (b"Date", http_date(T0))
    expires = (b"Expires", http_date(T0 + 500))
    assert freshness_lifetime(200, [*cc("s-maxage=10, max-age=20"), date, expires], T0) == 10
    assert freshness_lifetime(200, [*cc("max-age=20"), date, expires], T0) == 20
    assert freshness_lifetime(200, [date, expires], T0) == 500
    # Without Date, Expires counts from when the response arrived.
    assert freshness_lifetime(200, [expires], T0 + 100) == 400


def test_invalid_expires_and_max_age_mean_stale() -> None:
    assert freshness_lifetime(200, [(b"Expires", b"0")], T0) == 0
    assert freshness_lifetime(200, cc("max-age=soon"), T0) == 0


def test_heuristic_is_a_tenth_of_the_last_modified_age_capped() -> None:
    date = (b"Date", http_date(T0))
    hour_old = [date, (b"Last-Modified", http_date(T0 - 3600))]
    assert freshness_lifetime(200, hour_old, T0) == pytest.approx(360)
    year_old = [date, (b"Last-Modified", http_date(T0 - 365 * 86400))]
    assert freshness_lifetime(200, year_old, T0) == HEURISTIC_CAP
    # only for heuristically cacheable statuses (or public)
    assert freshness_lifetime(201, hour_old, T0) == 0
    assert freshness_lifetime(201, [*hour_old, *cc("public")], T0) == pytest.approx(360)
    assert freshness_lifetime(200, [date], T0) == 0  # nothing to base it on


# --- age -------------------------------------------------------------------------------------


def test_current_age_follows_section_4_2_3() -> None:
    headers = [(b"Date", http_date(T0)), (b"Age", b"30")]
    # sent at T0+1, received at T0+3 (delay 2): corrected initial age max(3, 30 + 2) = 32
    assert current_age(headers, T0 + 1, T0 + 3, T0 + 13) == 42
    # a Date in the future (clock skew) does not make the age negative
    assert current_age([(b"Date", http_date(T0 + 100))], T0, T0, T0) == 0
    # apparent age counts when the origin's clock says the response is older
    assert current_age([(b"Date", http_date(T0 - 50))], T0, T0, T0) == 50


@pytest.mark.parametrize("value", [b"abc", b"-7200", b"7200.0", b"0, 0", b"7200;foo=bar"])
def test_an_age_that_is_not_one_delta_seconds_makes_the_response_old(value: bytes) -> None:
    assert current_age([(b"Age", value)], T0, T0, T0) >= DELTA_MAX
    assert current_age([(b"Age", b"0"), (b"Age", b"0")], T0, T0, T0) >= DELTA_MAX


# --- reuse -----------------------------------------------------------------------------------


def test_fresh_and_stale() -> None:
    assert reuse({}, {}, 60, 10) is Reuse.FRESH
    assert reuse({}, {}, 60, 60) is Reuse.VALIDATE


def test_request_directives_limit_reuse() -> None:
    assert reuse({b"max-age": b"5"}, {}, 60, 10) is Reuse.VALIDATE
    assert reuse({b"max-age": b"20"}, {}, 60, 10) is Reuse.FRESH
    assert reuse({b"min-fresh": b"55"}, {}, 60, 10) is Reuse.VALIDATE
    assert reuse({b"min-fresh": b"50"}, {}, 60, 10) is Reuse.FRESH
    assert reuse({b"no-cache": None}, {}, 60, 10) is Reuse.VALIDATE
    assert reuse({b"max-stale": None}, {}, 60, 1000) is Reuse.STALE
    assert reuse({b"max-stale": b"100"}, {}, 60, 100) is Reuse.STALE
    assert reuse({b"max-stale": b"10"}, {}, 60, 100) is Reuse.VALIDATE


def test_response_directives_forbid_stale_reuse() -> None:
    for name in (b"must-revalidate", b"proxy-revalidate", b"s-maxage", b"no-cache"):
        assert reuse({b"max-stale": None}, {name: None}, 60, 100) is Reuse.VALIDATE, name
    # proxy-revalidate binds shared caches only
    assert reuse({b"max-stale": None}, {b"proxy-revalidate": None}, 60, 100, shared=False) is (
        Reuse.STALE
    )
    assert reuse({}, {b"no-cache": None}, 60, 10) is Reuse.VALIDATE


def test_stale_while_revalidate_and_stale_if_error() -> None:
    swr = {b"stale-while-revalidate": b"30"}
    assert reuse({}, swr, 60, 80) is Reuse.STALE_REVALIDATE
    assert reuse({}, swr, 60, 100) is Reuse.VALIDATE
    sie = {b"stale-if-error": b"30"}
    assert stale_if_error({}, sie, 60, 80)
    assert not stale_if_error({}, sie, 60, 100)
    assert stale_if_error({b"stale-if-error": b"60"}, {}, 60, 100)
    assert not stale_if_error({}, {**sie, b"must-revalidate": None}, 60, 80)
