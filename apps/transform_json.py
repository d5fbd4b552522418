"""A proxy that rewrites responses in flight: JSON gets a field, HTML a banner, all gzip.

    TRANSFORM_UPSTREAM=http://127.0.0.1:8001 thor-gateway --bind 127.0.0.1:8000 \\
        apps.transform_json:app

- ``application/json`` bodies (up to 1 MiB) are parsed, their ``internal_*`` keys dropped
  and ``"served_by": "thor"`` added;
- ``text/html`` bodies get a banner after ``<body>``;
- ``X-Powered-By`` goes, ``X-Content-Type-Options: nosniff`` is set;
- then everything compressible is gzipped for clients that accept it.

Each rewrite fixes the head as RFC 9110 asks: no Content-Length once the length changes,
strong ETags weakened, ``Vary: Accept-Encoding`` wherever gzip could apply.
"""

from __future__ import annotations

import json
import os

from thor_gateway.aggregation.transform import Gzip, HeaderRewrite, WholeBody
from thor_gateway.proxy import ProxyHandler

UPSTREAM = os.environ.get("TRANSFORM_UPSTREAM", "http://127.0.0.1:8001")
BANNER = b'<div class="banner">Served through Thor</div>'

Headers = list[tuple[bytes, bytes]]


def rewrite_json(body: bytes, headers: Headers) -> bytes:
    try:
        doc = json.loads(body)
    except ValueError:
        return body  # not JSON after all: leave it alone
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if not k.startswith("internal_")}
        doc["served_by"] = "thor"
    return json.dumps(doc).encode()


def add_banner(body: bytes, headers: Headers) -> bytes:
    at = body.lower().find(b"<body")
    end = body.find(b">", at) if at >= 0 else -1
    if end < 0:
        return BANNER + body
    return body[: end + 1] + BANNER + body[end + 1 :]


TRANSFORMS = [
    WholeBody(rewrite_json, types=(b"application/json",)),
    WholeBody(add_banner, types=(b"text/html",)),
    HeaderRewrite(remove=[b"X-Powered-By"], set={b"X-Content-Type-Options": b"nosniff"}),
    Gzip(),
]

app = ProxyHandler([UPSTREAM], transforms=TRANSFORMS)
