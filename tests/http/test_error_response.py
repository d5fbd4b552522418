"""HttpError.as_response: the one shape of an error answer."""

from __future__ import annotations

from thor.http.error import (
    ConnectError,
    HttpError,
    MethodNotAllowedError,
    ServiceUnavailableError,
)


def test_status_phrase_and_a_sized_plain_text_body() -> None:
    answer = MethodNotAllowedError().as_response()
    assert answer.status == 405
    assert answer.phrase == b"Method Not Allowed"
    assert answer.body == b"405 " + MethodNotAllowedError.desc.encode() + b"\n"
    assert answer.headers == [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(answer.body)).encode()),
    ]


def test_extra_fields_follow_and_a_given_body_is_sized() -> None:
    status, phrase, headers, body = ServiceUnavailableError().as_response(
        [(b"Retry-After", b"1")], b"busy\n"
    )
    assert (status, phrase, body) == (503, b"Service Unavailable", b"busy\n")
    assert headers[1:] == [(b"Content-Length", b"5"), (b"Retry-After", b"1")]


def test_the_detail_is_never_echoed() -> None:
    # The detail may hold request data (a header value, a target): it stays in the logs.
    answer = ConnectError("<script>alert(1)</script>").as_response()
    assert b"script" not in answer.body
    assert HttpError().as_response().phrase == b"Internal Server Error"
