"""Streaming response transforms: a hook API, gzip, header rewriting, whole-body rewriting.

Theory of operation: a :class:`Transform` sees the head of each response and decides.
``begin(method, request_headers, status, headers)`` returns the (possibly rewritten) header
list and a :class:`BodyFilter` for the body, or None to let the body pass untouched.  A
filter's ``feed(chunk)`` returns what to send now (maybe nothing), ``finish()`` what is left
at the end.  A :class:`ResponseTransformer` chains several transforms for one response (the
first one sees the original), and :class:`TransformedExchange` puts a chain in front of a
server exchange (:class:`TransformHandler` does that for every request of a mounted
handler), so proxied responses and app responses go through the same code.

A transform that changes the body must also fix the head: drop Content-Length (the new
length is not known until the end), and weaken a strong ETag (RFC 9110 §8.8.3: a strong
validator promises byte-identical content).

Built-ins:

- :class:`Gzip`: compresses when the client accepts gzip (RFC 9110 §12.5.3, q-values
  honoured, ``*`` included, no Accept-Encoding means no compression) and the response is
  worth it: not 1xx/204/206/304, not already encoded, no ``no-transform``
  (RFC 9111 §5.2.2.6), a compressible type, and at least ``min_size`` bytes when the length
  is known.  ``Vary: Accept-Encoding`` goes on every response it *could* have compressed,
  so caches key on it (RFC 9110 §12.5.5), whether or not this client got gzip.  A HEAD
  response gets the fields the GET would have (RFC 9110 §9.3.2: Content-Encoding, the weak
  ETag, no Content-Length), and no body filter.
- :class:`HeaderRewrite`: set, add or remove response fields.
- :class:`WholeBody`: buffer a body (up to ``max_size``) and rewrite it with a function;
  bodies larger than that pass through unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "BodyFilter",
    "Gzip",
    "HeaderRewrite",
    "ResponseTransformer",
    "Transform",
    "TransformHandler",
    "TransformedExchange",
    "WholeBody",
    "accepted_q",
    "parse_accept_encoding",
    "weaken_etag",
]

Headers = list[tuple[bytes, bytes]]


class BodyFilter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class Transform(Protocol):
    def begin(
        self, method: bytes, request_headers: Headers, status: int, headers: Headers
    ) -> tuple[Headers, BodyFilter | None]: ...


# ------------------------------------------------------------------------------ helpers


def _get(headers: Headers, name: bytes) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name]


def _split(values: Iterable[bytes]) -> list[bytes]:
    return [m.strip(b" \t") for v in values for m in v.split(b",") if m.strip(b" \t")]


def parse_accept_encoding(values: Iterable[bytes]) -> dict[bytes, float]:
    """``{coding: q}`` from Accept-Encoding field values (RFC 9110 §12.5.3, §12.4.2).

    A malformed q-value makes that member unacceptable (q=0): guessing "yes" would send
    gzip to a client that may not read it.
    """
    out: dict[bytes, float] = {}
    for member in _split(values):
        coding, *params = (p.strip(b" \t") for p in member.split(b";"))
        q = 1.0
        for param in params:
            pname, _, pvalue = param.partition(b"=")
            if pname.strip().lower() == b"q":
                try:
                    q = float(pvalue.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        out[coding.lower()] = q
    return out


def accepted_q(
    accept: Mapping[bytes, float], coding: bytes, aliases: Sequence[bytes] = ()
) -> float:
    """The q-value ``accept`` gives ``coding`` (or an alias), else what ``*`` gives, else 0."""
    for name in (coding, *aliases):
        if name in accept:
            return accept[name]
    return accept.get(b"*", 0.0)


def weaken_etag(headers: Headers) -> Headers:
    """Strong ETags made weak (RFC 9110 §8.8.3): the transformed bytes differ."""
    return [
        (n, b"W/" + v if n.lower() == b"etag" and v.startswith(b'"') else v) for n, v in headers
    ]


def _add_vary(headers: Headers, name: bytes) -> Headers:
    present = {m.lower() for m in _split(_get(headers, b"vary"))}
    if name.lower() in present or b"*" in present:
        return headers
    return [*headers, (b"Vary", name)]


# ------------------------------------------------------------------------------ chaining


class ResponseTransformer:
    """Runs a chain of transforms over one response."""

    __slots__ = ("_filters", "method", "request_headers", "transforms")

    def __init__(
        self, transforms: Sequence[Transform], method: bytes, request_headers: Headers
    ) -> None:
        self.transforms = transforms
        self.method = method
        self.request_headers = request_headers
        self._filters: list[BodyFilter] = []

    def start(self, status: int, headers: Headers) -> Headers:
        for transform in self.transforms:
            headers, body_filter = transform.begin(
                self.method, self.request_headers, status, headers
            )
            if body_filter is not None:
                self._filters.append(body_filter)
        return headers

    @property
    def active(self) -> bool:
        """True when some transform changes the body."""
        return bool(self._filters)

    def body(self, chunk: bytes) -> bytes:
        for body_filter in self._filters:
            if not chunk:
                break
            chunk = body_filter.feed(chunk)
        return chunk

    def end(self) -> bytes:
        out = b""
        for body_filter in self._filters:
            out = (body_filter.feed(out) if out else b"") + body_filter.finish()
        return out


class TransformedExchange:
    """A server exchange whose response goes through ``transforms``.

    Hand it to a handler in place of the exchange: ``response_start``, ``response_body`` and
    ``response_done`` are filtered, everything else (events, request side, attributes) is
    the real exchange's.
    """

    def __init__(self, exchange: Any, transforms: Sequence[Transform]) -> None:
        self._exchange = exchange
        self._transformer = ResponseTransformer(
            transforms, _as_bytes(exchange.method), list(exchange.req_hdrs)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    def response_start(
        self, status: int | bytes, phrase: str | bytes, headers: Iterable[tuple[Any, Any]]
    ) -> None:
        fields = [(_as_bytes(n), _as_bytes(v)) for n, v in headers]
        fields = self._transformer.start(int(status), fields)
        self._exchange.response_start(status, phrase, fields)

    def response_body(self, chunk: bytes) -> None:
        out = self._transformer.body(chunk)
        if out:
            self._exchange.response_body(out)

    def response_done(self, trailers: Headers | None = None, close: bool = False) -> None:
        tail = self._transformer.end()
        if tail:
            self._exchange.response_body(tail)
        self._exchange.response_done(trailers or [], close)


class TransformHandler:
    """Any mountable handler (WSGI, ASGI, native, proxy) with ``transforms`` on its responses.

    ``TransformHandler(WsgiHandler(app, ...), [Gzip()])`` gzips a WSGI app's answers.
    """

    def __init__(self, handler: Any, transforms: Sequence[Transform]) -> None:
        self.handler = handler
        self.transforms = list(transforms)

    def handle(self, exchange: Any, request: Any) -> None:
        self.handler.handle(TransformedExchange(exchange, self.transforms), request)

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        self.handler.startup(done)

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        self.handler.shutdown(done)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


# ------------------------------------------------------------------------------ gzip

COMPRESSIBLE = (
    b"text/",
    b"application/json",
    b"application/javascript",
    b"application/ecmascript",
    b"application/xml",
    b"application/xhtml+xml",
    b"application/rss+xml",
    b"application/atom+xml",
    b"application/x-javascript",
    b"application/manifest+json",
    b"application/wasm",
    b"image/svg+xml",
    b"image/x-icon",
    b"font/ttf",
    b"font/otf",
)


class _GzipFilter:
    __slots__ = ("_compressor", "_flush")

    def __init__(self, level: int, flush: bool) -> None:
        # wbits 31: a gzip container (RFC 1952), not a raw zlib stream.
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._flush = flush

    def feed(self, chunk: bytes) -> bytes:
        out = self._compressor.compress(chunk)
        if self._flush:  # streams (server-sent events) want each chunk on the wire now
            out += self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return out

    def finish(self) -> bytes:
        return self._compressor.flush(zlib.Z_FINISH)


class Gzip:
    """Compress responses with gzip when the client accepts it and it is worth it."""

    def __init__(
        self,
        *,
        level: int = 6,
        min_size: int = 256,
        types: Sequence[bytes] = COMPRESSIBLE,
        flush_each_chunk: bool = False,
    ) -> None:
        self.level = level
        self.min_size = min_size
        self.types = tuple(t.lower() for t in types)
        self.flush_each_chunk = flush_each_chunk

    def _compressible(self, status: int, headers: Headers) -> bool:
        """Could this response be gzipped for some client? (Then it varies on the field.)"""
        if status < 200 or status in (204, 206, 304):
            return False
        encodings = [e.lower() for e in _split(_get(headers, b"content-encoding"))]
        if any(e != b"identity" for e in encodings):
            return False
        if b"no-transform" in [d.lower() for d in _split(_get(headers, b"cache-control"))]:
            return False
        content_type = b"".join(_get(headers, b"content-type")[:1]).lower()
        if not content_type.startswith(self.types):
            return False
        lengths = _get(headers, b"content-length")
        return not (lengths and lengths[0].isdigit() and int(lengths[0]) < self.min_size)

    def begin(
        self, method: bytes, request_headers: Headers, status: int, headers: Headers
    ) -> tuple[Headers, BodyFilter | None]:
        if not self._compressible(status, headers):
            return headers, None
        headers = _add_vary(headers, b"Accept-Encoding")
        accept = parse_accept_encoding(_get(request_headers, b"accept-encoding"))
        if accepted_q(accept, b"gzip", (b"x-gzip",)) <= 0:
            return headers, None
        drop = {b"content-length", b"content-encoding", b"accept-ranges"}
        headers = [(n, v) for n, v in headers if n.lower() not in drop]
        headers = weaken_etag(headers)
        headers.append((b"Content-Encoding", b"gzip"))
        if method == b"HEAD":  # RFC 9110 §9.3.2: the GET's fields, without its body
            return headers, None
        return headers, _GzipFilter(self.level, self.flush_each_chunk)


# ------------------------------------------------------------------------------ headers


class HeaderRewrite:
    """Rewrite response fields: ``remove`` names, ``set`` (replace) and ``add`` (append)."""

    def __init__(
        self,
        *,
        set: Mapping[bytes, bytes] | None = None,
        add: Iterable[tuple[bytes, bytes]] = (),
        remove: Iterable[bytes] = (),
        when: Callable[[int, Headers], bool] | None = None,
    ) -> None:
        self.set = dict(set or {})
        self.add = list(add)
        self.remove = {r.lower() for r in remove} | {s.lower() for s in self.set}
        self.when = when

    def begin(
        self, method: bytes, request_headers: Headers, status: int, headers: Headers
    ) -> tuple[Headers, BodyFilter | None]:
        if self.when is not None and not self.when(status, headers):
            return headers, None
        out = [(n, v) for n, v in headers if n.lower() not in self.remove]
        out.extend(self.set.items())
        out.extend(self.add)
        return out, None


# ------------------------------------------------------------------------------ whole body


class _WholeBodyFilter:
    __slots__ = ("_chunks", "_fn", "_headers", "_max", "_passing", "_size")

    def __init__(self, fn: Callable[[bytes, Headers], bytes], headers: Headers, limit: int):
        self._fn = fn
        self._headers = headers
        self._max = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._passing = False  # gave up: too large, passing the rest through

    def feed(self, chunk: bytes) -> bytes:
        if self._passing:
            return chunk
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size <= self._max:
            return b""
        self._passing = True
        out = b"".join(self._chunks)
        self._chunks = []
        return out

    def finish(self) -> bytes:
        if self._passing:
            return b""
        body = b"".join(self._chunks)
        self._chunks = []
        return self._fn(body, self._headers)


class WholeBody:
    """Rewrite whole bodies of the given content types with ``fn(body, headers) -> body``.

    The body is buffered up to ``max_size`` bytes; a larger one (by its Content-Length, or
    once it grows past the limit) passes through unchanged.
    """

    def __init__(
        self,
        fn: Callable[[bytes, Headers], bytes],
        *,
        types: Sequence[bytes] = (b"application/json",),
        max_size: int = 1 << 20,
        statuses: Callable[[int], bool] = lambda status: 200 <= status < 300 and status != 204,
    ) -> None:
        self.fn = fn
        self.types = tuple(t.lower() for t in types)
        self.max_size = max_size
        self.statuses = statuses

    def begin(
        self, method: bytes, request_headers: Headers, status: int, headers: Headers
    ) -> tuple[Headers, BodyFilter | None]:
        if not self.statuses(status):
            return headers, None
        if any(e.lower() != b"identity" for e in _split(_get(headers, b"content-encoding"))):
            return headers, None  # encoded bytes are not the text the function expects
        content_type = b"".join(_get(headers, b"content-type")[:1]).lower()
        if not content_type.startswith(self.types):
            return headers, None
        lengths = _get(headers, b"content-length")
        if lengths and lengths[0].isdigit() and int(lengths[0]) > self.max_size:
            return headers, None
        out = weaken_etag([(n, v) for n, v in headers if n.lower() != b"content-length"])
        if method == b"HEAD":  # RFC 9110 §9.3.2: the GET's fields, without its body
            return out, None
        return out, _WholeBodyFilter(self.fn, out, self.max_size)
