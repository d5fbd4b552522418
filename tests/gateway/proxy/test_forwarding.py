"""Header and target rewriting for the proxy (RFC 9110 §7.6, RFC 7239)."""

from __future__ import annotations

import pytest

from thor.http.headers import strip_hop_by_hop
from thor_gateway.proxy import forwarding as fw
from thor_gateway.proxy.retries import RetryBudget


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [n.lower() for n, _ in headers]


def test_hop_by_hop_fields_and_connection_options_are_dropped() -> None:
    headers = [
        (b"Host", b"example.com"),
        (b"Connection", b"keep-alive, X-Secret , close"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Upgrade", b"websocket"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"X-Secret", b"1"),
        (b"Accept", b"*/*"),
        (b"Trailer", b"X-Checksum"),
    ]
    out = strip_hop_by_hop(headers)
    assert out == [(b"Host", b"example.com"), (b"Accept", b"*/*"), (b"Trailer", b"X-Checksum")]


def test_request_headers_relay_trailer_but_not_next_hop_credentials() -> None:
    # RFC 9110 §6.6.2: Trailer is end-to-end; §11.7.2: Proxy-Authorization is for this hop.
    headers = [
        (b"Host", b"front"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-Checksum"),
        (b"Proxy-Authorization", b"Basic eDp5"),
        (b"Transfer-Encoding", b"chunked"),
    ]
    out = fw.request_headers(
        headers, version=b"1.1", client=None, scheme="http", upstream_host=b"backend"
    )
    names = [name.lower() for name, _ in out]
    assert (b"Trailer", b"X-Checksum") in out
    assert b"proxy-authorization" not in names
    assert b"te" not in names
    assert b"transfer-encoding" not in names


def test_request_headers_add_via_forwarded_and_x_forwarded() -> None:
    headers = [
        (b"host", b"front.example:8080"),
        (b"Accept", b"text/html"),
        (b"X-Forwarded-For", b"203.0.113.7"),
        (b"Connection", b"close"),
    ]
    out = fw.request_headers(
        headers,
        version=b"1.0",
        client=("127.0.0.1", 5555),
        scheme="https",
        upstream_host=b"backend:9000",
    )
    assert out[0] == (b"Host", b"backend:9000")
    d = {n.lower(): v for n, v in out}
    assert d[b"via"] == b"1.0 thor"
    assert d[b"forwarded"] == b'for=127.0.0.1;proto=https;host="front.example:8080"'
    assert d[b"x-forwarded-for"] == b"203.0.113.7, 127.0.0.1"
    assert d[b"x-forwarded-proto"] == b"https"
    assert d[b"x-forwarded-host"] == b"front.example:8080"
    assert b"connection" not in d
    assert d[b"accept"] == b"text/html"


def test_request_headers_preserve_host_and_ipv6_and_unix_clients() -> None:
    out = fw.request_headers(
        [(b"Host", b"front")],
        version=b"1.1",
        client=("::1", 1),
        scheme="http",
        upstream_host=b"backend",
        preserve_host=True,
    )
    d = {n.lower(): v for n, v in out}
    assert d[b"host"] == b"front"
    assert d[b"forwarded"] == b'for="[::1]";proto=http;host=front'
    assert d[b"x-forwarded-for"] == b"::1"
    out = fw.request_headers(
        [], version=b"1.1", client=None, scheme="http", upstream_host=b"backend"
    )
    d = {n.lower(): v for n, v in out}
    assert d[b"host"] == b"backend"
    assert d[b"forwarded"] == b"for=unknown;proto=http"
    assert b"x-forwarded-host" not in d


def test_several_x_forwarded_for_lines_are_combined_in_order() -> None:
    out = fw.request_headers(
        [(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3")],
        version=b"1.1",
        client=("127.0.0.1", 1),
        scheme="http",
        upstream_host=b"b",
    )
    assert fw_values(out, b"x-forwarded-for") == [b"1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]


def fw_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name]


def test_existing_via_and_forwarded_are_kept_and_appended_to() -> None:
    out = fw.request_headers(
        [(b"Via", b"1.1 edge"), (b"Forwarded", b"for=198.51.100.1")],
        version=b"1.1",
        client=("127.0.0.1", 1),
        scheme="http",
        upstream_host=b"b",
        pseudonym=b"gw1",
    )
    assert fw_values(out, b"via") == [b"1.1 edge", b"1.1 gw1"]
    assert fw_values(out, b"forwarded") == [b"for=198.51.100.1", b"for=127.0.0.1;proto=http"]


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        (b"TRACE", b"0", 0),
        (b"OPTIONS", b"5", 5),
        (b"GET", b"0", None),
        (b"TRACE", b"junk", None),
        (b"TRACE", None, None),
    ],
)
def test_max_forwards(method: bytes, value: bytes | None, expected: int | None) -> None:
    headers = [] if value is None else [(b"Max-Forwards", value)]
    assert fw.max_forwards(method, headers) == expected


def test_max_forwards_is_decremented_for_trace_and_options_only() -> None:
    common = {"version": b"1.1", "client": None, "scheme": "http", "upstream_host": b"b"}
    out = fw.request_headers([(b"Max-Forwards", b"3")], method=b"OPTIONS", **common)  # type: ignore[arg-type]
    assert fw_values(out, b"max-forwards") == [b"2"]
    out = fw.request_headers([(b"Max-Forwards", b"3")], method=b"GET", **common)  # type: ignore[arg-type]
    assert fw_values(out, b"max-forwards") == [b"3"]


def test_response_headers() -> None:
    out = fw.response_headers(
        [(b"Content-Type", b"text/plain"), (b"Connection", b"x-hop"), (b"X-Hop", b"1")],
        version=b"1.0",
    )
    assert out == [(b"Content-Type", b"text/plain"), (b"Via", b"1.0 thor")]


@pytest.mark.parametrize(
    ("raw", "query", "prefix", "base", "strip", "expected"),
    [
        (b"/api/users", b"", b"/api", b"", True, b"/users"),
        (b"/api/users", b"a=1", b"/api", b"/v2", True, b"/v2/users?a=1"),
        (b"/api", b"", b"/api", b"", True, b"/"),
        (b"/api/", b"", b"/api", b"/v2/", True, b"/v2/"),
        (b"/api/users", b"", b"/api", b"", False, b"/api/users"),
        (b"/api/users", b"", b"/api", b"/v2", False, b"/v2/api/users"),
        (b"/a%20b/x%2Fy", b"", b"/a b", b"", True, b"/x%2Fy"),
        (b"/x", b"q", b"", b"/base", True, b"/base/x?q"),
        (b"/other/x", b"", b"/root", b"", True, b"/other/x"),
    ],
)
def test_upstream_target(
    raw: bytes, query: bytes, prefix: bytes, base: bytes, strip: bool, expected: bytes
) -> None:
    assert fw.upstream_target(raw, query, prefix, base, strip_prefix=strip) == expected


def test_upstream_target_keeps_an_empty_query() -> None:
    assert fw.upstream_target(b"/p/x", b"", b"/p", has_query=True) == b"/x?"


def test_trace_body_leaves_out_credentials() -> None:
    body = fw.trace_body(
        b"TRACE", b"/x", b"1.1", [(b"Host", b"h"), (b"Authorization", b"secret"), (b"Cookie", b"c")]
    )
    assert body == b"TRACE /x HTTP/1.1\r\nHost: h\r\n\r\n"


def test_relay_response_headers_flags_foreign_codings_and_drops_plain_connection() -> None:
    out, foreign = fw.relay_response_headers(
        [(b"Connection", b"keep-alive"), (b"Transfer-Encoding", b"chunked"), (b"A", b"1")], b"1.1"
    )
    assert out == [(b"Transfer-Encoding", b"chunked"), (b"A", b"1"), (b"Via", b"1.1 thor")]
    assert not foreign
    out, foreign = fw.relay_response_headers(
        [(b"Connection", b"X-Hop"), (b"Transfer-Encoding", b"gzip, chunked")], b"1.0", b"gw"
    )
    assert (b"Connection", b"X-Hop") in out  # left for the server's writer, with X-Hop
    assert out[-1] == (b"Via", b"1.0 gw")
    assert foreign


def test_forwarded_elements_are_remembered_per_client_host_scheme_and_host() -> None:
    first = fw.forwarded_element(("192.0.2.7", 1234), "http", b"a.example")
    assert first == b"for=192.0.2.7;proto=http;host=a.example"
    # Another port of the same client: the same element (the port is never in it).
    assert fw.forwarded_element(("192.0.2.7", 999), "http", b"a.example") is first
    assert (
        fw.forwarded_element(("2001:db8::1", 1), "https", None)
        == b'for="[2001:db8::1]";proto=https'
    )
    assert fw.forwarded_element(None, "http", b"x y") == b'for=unknown;proto=http;host="x y"'
    for i in range(fw._ELEMENTS_MAX + 5):
        assert fw.forwarded_element((f"10.0.{i // 256}.{i % 256}", 1), "http", None).startswith(
            b"for=10.0."
        )
    assert len(fw._elements) <= fw._ELEMENTS_MAX


def test_retry_budget_counts_requests_across_seconds() -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, window=2)
    budget.request(10.0)
    budget.request(10.5)  # the same second's bucket
    budget.request(11.0)  # a new bucket
    assert [budget.allow(11.5) for _ in range(4)] == [True, True, True, False]
    budget.request(12.0)  # reuses the first bucket: second 10 no longer counts
    assert not budget.allow(12.5)
