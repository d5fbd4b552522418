"""thor.http.headers helpers and thor.http.error classes."""

from __future__ import annotations

import pytest

from thor.http import error, headers

H = [
    (b"Host", b"a"),
    (b"Accept", b"text/html, text/plain"),
    (b"accept", b"*/*"),
    (b"Set-Cookie", b"a=1, b"),
    (b"Connection", b"X-Foo, close"),
    (b"X-Foo", b"bar"),
    (b"Keep-Alive", b"1"),
    (b"TE", b"trailers"),
]


def test_get_header_and_values() -> None:
    assert headers.get_header(H, b"ACCEPT") == [b"text/html", b"text/plain", b"*/*"]
    assert headers.get_values(H, b"set-cookie") == [b"a=1, b"]
    assert headers.get_header(H, b"missing") == []
    assert headers.split_list(b" a ,, b,") == [b"a", b"b"]


def test_names_dict_tokens() -> None:
    assert headers.header_names(H) >= {b"host", b"accept", b"x-foo"}
    d = headers.header_dict(H, omit=[b"Set-Cookie"])
    assert d[b"accept"] == [b"text/html", b"text/plain", b"*/*"]
    assert b"set-cookie" not in d
    assert headers.connection_tokens(H) == {b"x-foo", b"close"}


def test_strip_hop_by_hop() -> None:
    assert headers.strip_hop_by_hop(H, also=[b"HOST"]) == [
        (b"Accept", b"text/html, text/plain"),
        (b"accept", b"*/*"),
        (b"Set-Cookie", b"a=1, b"),
    ]
    assert b"transfer-encoding" in headers.HOP_BY_HOP


def test_error_shape() -> None:
    err = error.HostRequiredError("no host")
    assert isinstance(err, error.HttpError)
    assert isinstance(err, error.ThorError)
    assert err.detail == "no host"
    assert str(err) == "Host header required: no host"
    assert str(error.HostRequiredError()) == "Host header required"
    assert repr(err) == "HostRequiredError('no host')"
    assert err.server_status == (b"400", b"Bad Request")
    assert error.HttpError().status == 500
    assert issubclass(error.ChunkTerminatorError, error.ChunkError)
    assert issubclass(error.OutputStateError, error.OutputError)
    assert error.RequestLineError.server_recoverable


@pytest.mark.parametrize("name", error.__all__)
def test_every_error_has_desc_and_known_status(name: str) -> None:
    cls = getattr(error, name)
    if not issubclass(cls, error.HttpError):
        return
    assert cls.desc
    status, phrase = cls().server_status
    assert 400 <= int(status) <= 599
    assert phrase
