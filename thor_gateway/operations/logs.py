"""Error-log setup: text or JSON lines on standard error or in a file.

The JSON form is one object per line (``time``, ``level``, ``logger``, ``pid``,
``message``, and ``exception`` when there is one), so that a log shipper needs
no parsing rules; :func:`json.dumps` escapes control characters, so a request
path cannot forge a line.  The text form escapes them too (CVE-2020-7694 was
an access log that wrote a decoded ``%1b[`` to a terminal).  Repeated lines are
summarised (:mod:`thor_gateway.operations.log_limit`).
"""

from __future__ import annotations

import configparser
import json
import logging
import logging.config
import logging.handlers
import os
import sys
import time
import tomllib

from thor_gateway.operations.log_limit import RepeatFilter, summarise_repeats

__all__ = ["JsonFormatter", "TextFormatter", "apply_config_file", "configure", "escape"]

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

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        details = getattr(record, "details", "")
        # A user's traceback, shown like an exception's under its one-line message.
        return f"{text}\n{details}" if details else text


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
        elif details := getattr(record, "details", ""):
            entry["exception"] = details
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, form: str, path: str | None = None, repeat_limit: int = 10) -> None:
    """Send the ``thor`` and ``thor_gateway`` loggers to standard error, or to ``path``.

    A file is reopened when it has been moved or removed (``logrotate``), as the
    access log is on SIGUSR1; raises ``OSError`` when it cannot be opened.  Alike lines
    past ``repeat_limit`` per 10 s are summarised (a 503 per refused request under
    saturation); 0 writes every line.
    """
    handler: logging.StreamHandler  # type: ignore[type-arg]
    if path is None or path == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    if repeat_limit > 0:
        summarise_repeats(handler, RepeatFilter(repeat_limit))
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    for name in ("thor", "thor_gateway"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def apply_config_file(path: str) -> None:
    """Configure logging from a file, as ``--log-config`` says; raises ``ValueError``.

    ``.json`` and ``.toml`` files hold a :func:`logging.config.dictConfig` dictionary
    (``version = 1``...); any other name is read by :func:`logging.config.fileConfig`
    (the ``.ini`` format gunicorn's ``--log-config`` takes).  Loggers the file does not
    name keep working (``disable_existing_loggers`` defaults to false here).
    """
    try:
        if path.endswith((".json", ".toml")):
            with open(path, "rb") as file:
                data = json.load(file) if path.endswith(".json") else tomllib.load(file)
            if not isinstance(data, dict):
                raise ValueError("expected a dictConfig table")
            data.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(data)
        else:
            if not os.path.exists(path):
                raise FileNotFoundError(f"no such file: {path}")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, configparser.Error) as error:
        raise ValueError(f"{path}: {error}") from None
