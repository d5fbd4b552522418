"""The WSGI environ (PEP 3333 "environ Variables"), ``wsgi.errors`` and ``wsgi.file_wrapper``.

The environ is built on the loop thread from the routed
:class:`~thor_gateway.routing.request.Request`; every value that is not a ``wsgi.*`` object
is a native ``str`` whose code points are the request's bytes (latin-1, PEP 3333 "Unicode Issues").

Header fields become ``HTTP_*`` keys.  A field whose name contains ``_`` is
dropped: once ``-`` and ``_`` both map to ``_``, ``X_Forwarded_For`` would be
indistinguishable from ``X-Forwarded-For`` and a client could forge the one a
trusted proxy sets (servers.md Appendix B55; gunicorn ``--header-map drop``).
Repeated fields are joined with ``", "`` (RFC 9110 §5.3), ``Cookie`` with ``"; "``
(RFC 6265 §5.4).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO, Any

from thor_gateway.routing.request import Request

__all__ = ["ErrorStream", "FileWrapper", "build_environ"]

app_log = logging.getLogger("thor_gateway.app")

_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Cache of header name -> environ key; names repeat across requests.
_KEYS: dict[bytes, str | None] = {}
_MAX_CACHED_KEYS = 1024


def _environ_key(name: bytes) -> str | None:
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        lower = name.lower()
        if b"_" in lower:
            key = None  # Appendix B55: never map an underscore name onto a dashed one
        else:
            key = _SPECIAL.get(lower) or "HTTP_" + lower.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < _MAX_CACHED_KEYS:
            _KEYS[name] = key
    return key


def build_environ(
    request: Request,
    *,
    wsgi_input: Any,
    errors: ErrorStream,
    multiprocess: bool,
) -> dict[str, Any]:
    """The environ for ``request`` (loop thread)."""
    server = request.server
    scheme = request.scheme
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("latin-1"),
        "SCRIPT_NAME": request.script_name.decode("latin-1"),
        "PATH_INFO": request.path_info.decode("latin-1"),
        "QUERY_STRING": request.query.decode("latin-1"),
        "SERVER_NAME": server[0] if server else "localhost",
        "SERVER_PORT": str(server[1]) if server else _DEFAULT_PORTS.get(scheme, "80"),
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("latin-1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": wsgi_input,
        "wsgi.errors": errors,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
    client = request.client
    if client is not None:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for name, value in request.headers:
        key = _environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        previous = environ.get(key)
        if previous is None:
            environ[key] = text
        elif key == "HTTP_COOKIE":
            environ[key] = previous + "; " + text
        else:
            environ[key] = previous + ", " + text
    return environ


class ErrorStream:
    """``wsgi.errors``: text written by the app goes to the ``thor_gateway.app`` logger.

    Each complete line becomes one ERROR record; ``flush()`` emits a partial line.
    One stream per request, so lines from concurrent requests do not mix.
    """

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            app_log.error("%s", line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            app_log.error("%s", self._partial)
            self._partial = ""


class FileWrapper:
    """``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling").

    Iterating reads ``block_size`` bytes at a time in the worker thread (large
    blocks: each one is a hand-off to the loop thread).  ``close()`` closes the file.
    """

    default_block_size = 256 * 1024

    def __init__(self, filelike: IO[bytes], block_size: int | None = None) -> None:
        self.filelike = filelike
        self.block_size = block_size or self.default_block_size
        self._close = getattr(filelike, "close", None)

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the file, if it can be closed (the server calls this, PEP 3333)."""
        if self._close is not None:
            self._close()
