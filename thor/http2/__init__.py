"""Thor's HTTP/2 (RFC 9113): the sans-IO protocol core in :mod:`thor.http2.protocol`, and
its IO: :mod:`thor.http2.server` serves it from ``HttpServer`` (ALPN ``h2``, h2c with prior
knowledge or by ``Upgrade: h2c``), each stream a :mod:`thor.http2.exchange`;
:mod:`thor.http2.client` speaks it for ``HttpClient`` (``h2c://`` URLs, ALPN ``h2``), each
client exchange a stream.

The core is pure (bytes in, events out) and imports no IO module, so that it can be
imported and tested alone.  See ``docs/http2.md``.
"""
