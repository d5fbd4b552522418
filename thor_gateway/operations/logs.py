"""Error-log setup: text or JSON lines on standard error.

The JSON form is one object per line (``time``, ``level``, ``logger``, ``pid``,
``message``, and ``exception`` when there is one), so that a log shipper needs
no parsing rules; :func:`json.dumps` escapes control characters, so a request
path cannot forge a line.  The text form escapes them too (CVE-2020-7694 was
an access log that wrote a decoded ``%1b[`` to a terminal).  Repeated lines are
summarised (:mod:`thor_gateway.operations.log_limit`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from thor_gateway.operations.log_limit import RepeatFilter, SummarisingHandler

__all__ = ["JsonFormatter", "TextFormatter", "configure", "escape"]

_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F]}


def escape(text: str) -> str:
    """Control characters as ``\\xNN``: one log record is one line, as written."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """``[time] [pid] [LEVEL] message``, in the style gunicorn's users read."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process or os.getpid(),
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, form: str, repeat_limit: int = 10) -> None:
    """Send the ``thor`` and ``thor_gateway`` loggers to standard error; alike lines past
    ``repeat_limit`` per 10 s are summarised (a 503 per refused request under saturation)."""
    handler: logging.Handler
    if repeat_limit > 0:
        handler = SummarisingHandler(sys.stderr, RepeatFilter(repeat_limit))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    for name in ("thor", "thor_gateway"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
