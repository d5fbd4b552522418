"""The access log: one line per finished exchange, in gunicorn's format language.

``--access-logformat`` is a Python ``%``-format over gunicorn's atoms, so that
existing formats work unchanged::

    h  remote address          l  '-'                   u  user (Basic auth) or '-'
    t  [10/Oct/2000:13:55:36 +0000]                     r  request line
    m  method                  U  path (no query)       q  query string
    H  protocol (HTTP/1.1)     s  status                b  body bytes or '-'
    B  body bytes              f  Referer               a  User-Agent
    T  seconds (integer)       D  microseconds          M  milliseconds
    L  seconds (decimal)       p  process id            C  Cache-Status (Thor's member)
    {name}i  request header    {name}o  response header {name}e  environment variable

Everything that comes from the client is escaped before it is written
(Appendix B50, CVE-2020-7694): control characters, DEL and non-ASCII bytes
become ``\\xNN``, and ``"`` and ``\\`` are backslashed, so a request can neither
start a new line, nor drive a terminal, nor break out of a quoted field.

With ``--log-format json`` each line is a JSON object of named fields instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from thor.http.headers import get_values

__all__ = ["AccessLog", "AccessRecord", "escape_bytes"]

_ESCAPE = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0x100)]}
_ESCAPE |= {ord('"'): '\\"', ord("\\"): "\\\\"}


def escape_bytes(data: bytes) -> str:
    """Client bytes as printable ASCII (see the module docstring)."""
    return data.decode("latin-1").translate(_ESCAPE)


@dataclass(slots=True)
class AccessRecord:
    """What the log needs from one exchange."""

    remote: str
    method: bytes
    target: bytes
    version: bytes
    status: int
    body_bytes: int
    duration: float  # seconds
    when: float  # wall-clock time of the end
    request_headers: list[tuple[bytes, bytes]]
    response_headers: list[tuple[bytes, bytes]]


class _Atoms(Mapping[str, str]):
    """Computes each atom on demand for ``format % atoms``."""

    def __init__(self, record: AccessRecord) -> None:
        self.r = record

    def __getitem__(self, key: str) -> str:
        r = self.r
        if key.startswith("{") and len(key) > 2 and key[-2] == "}":
            name = key[1:-2]
            if key[-1] == "i":
                return _header(r.request_headers, name)
            if key[-1] == "o":
                return _header(r.response_headers, name)
            if key[-1] == "e":
                return os.environ.get(name, "-")
        atom = _SIMPLE.get(key)
        if atom is None:
            return "-"
        text: str = atom(r)
        return text

    def __iter__(self) -> Any:
        return iter(_SIMPLE)

    def __len__(self) -> int:
        return len(_SIMPLE)


def _header(headers: list[tuple[bytes, bytes]], name: str) -> str:
    values = get_values(headers, name.encode("latin-1"))
    return escape_bytes(b", ".join(values)) if values else "-"


def _user(r: AccessRecord) -> str:
    for value in get_values(r.request_headers, b"authorization"):
        scheme, _, token = value.partition(b" ")
        if scheme.lower() == b"basic":
            try:
                user = base64.b64decode(token.strip(), validate=True).partition(b":")[0]
            except (binascii.Error, ValueError):
                return "-"
            return escape_bytes(user) or "-"
    return "-"


def _clf_time(r: AccessRecord) -> str:
    return time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime(r.when))


def _cache_status(r: AccessRecord) -> str:
    # RFC 9211 §2: Cache-Status is a list, one member per cache, the nearest to the client
    # last; upstream caches may have added theirs.  Thor's member is the one named thor.
    found = b""
    for name, value in r.response_headers:
        if len(name) == 12 and name.lower() == b"cache-status":
            for member in value.split(b","):
                member = member.strip()
                if member[:4].lower() == b"thor" and member[4:5] in (b"", b";", b" "):
                    found = member
    return escape_bytes(found) if found else "-"


def _path(r: AccessRecord) -> str:
    return escape_bytes(r.target.partition(b"?")[0])


_SIMPLE: dict[str, Any] = {
    "h": lambda r: escape_bytes(r.remote.encode("latin-1", "replace")),
    "l": lambda r: "-",
    "u": _user,
    "t": _clf_time,
    "r": lambda r: escape_bytes(b"%s %s HTTP/%s" % (r.method, r.target, r.version)),
    "m": lambda r: escape_bytes(r.method),
    "U": _path,
    "q": lambda r: escape_bytes(r.target.partition(b"?")[2]),
    "H": lambda r: "HTTP/" + escape_bytes(r.version),
    "s": lambda r: str(r.status),
    "b": lambda r: str(r.body_bytes) if r.body_bytes else "-",
    "B": lambda r: str(r.body_bytes),
    "f": lambda r: _header(r.request_headers, "referer"),
    "a": lambda r: _header(r.request_headers, "user-agent"),
    "T": lambda r: str(int(r.duration)),
    "D": lambda r: str(int(r.duration * 1_000_000)),
    "M": lambda r: str(int(r.duration * 1000)),
    "L": lambda r: f"{r.duration:.6f}",
    "p": lambda r: f"<{os.getpid()}>",
    "C": _cache_status,
}


class AccessLog:
    """Writes one line per record to a stream (``-`` is standard output)."""

    def __init__(self, path: str, fmt: str, *, json_lines: bool = False) -> None:
        self.format = fmt
        self.json_lines = json_lines
        self.line(_sample())  # a bad format fails now, not on the first request
        self.path = path
        self._own = path != "-"
        self.stream: IO[str] = sys.stdout
        if self._own:
            self.stream = open(path, "a", encoding="ascii", buffering=1)  # noqa: SIM115 - kept open
        self._lock = threading.Lock()

    def line(self, record: AccessRecord) -> str:
        """The text of ``record``'s line (without the newline)."""
        if self.json_lines:
            return json.dumps(_json_fields(record))
        return self.format % _Atoms(record)

    def write(self, record: AccessRecord) -> None:
        """Log ``record``."""
        text = self.line(record) + "\n"
        with self._lock:  # threads of a WSGI pool never call this; other embedders may
            self.stream.write(text)
            self.stream.flush()

    def reopen(self) -> None:
        """Open the file again under its name (SIGUSR1, after logrotate moved it)."""
        if self._own:
            with self._lock:
                old = self.stream
                self.stream = open(self.path, "a", encoding="ascii", buffering=1)  # noqa: SIM115
                old.close()

    def close(self) -> None:
        """Close the file (standard output is left open)."""
        if self._own:
            self.stream.close()


def _json_fields(r: AccessRecord) -> dict[str, object]:
    atoms = _Atoms(r)
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.when)),
        "remote_addr": atoms["h"],
        "method": atoms["m"],
        "path": atoms["U"],
        "query": atoms["q"],
        "protocol": atoms["H"],
        "status": r.status,
        "bytes": r.body_bytes,
        "duration_ms": round(r.duration * 1000, 3),
        "referer": atoms["f"],
        "user_agent": atoms["a"],
        "pid": os.getpid(),
        "cache_status": atoms["C"],
    }


def _sample() -> AccessRecord:
    return AccessRecord("127.0.0.1", b"GET", b"/", b"1.1", 200, 0, 0.0, time.time(), [], [])
