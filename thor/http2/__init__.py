"""Thor's HTTP/2 (RFC 9113): the sans-IO protocol core in :mod:`thor.http2.protocol`.

The core is pure (bytes in, events out) and imports no IO module, so that it can be
imported and tested alone; serving it from ``HttpServer`` (ALPN ``h2``, h2c with prior
knowledge) is the IO layer's job, built on top.  See ``docs/http2.md``.
"""
