"""The process around the apps: directory, import path, environment, pid file, user.

In the order the gateway applies them (gunicorn's order, so its users find no surprise):

1. ``--umask`` first, so that everything created afterwards follows it (the UNIX
   sockets, the pid file, the logs);
2. ``--chdir``, then ``--pythonpath`` / ``--app-dir`` (relative entries are taken from
   the new directory), then ``--env-file``: all before any app is imported, so an app
   reads its settings from the environment at import time as it would under
   ``python -m``.  Variables already in the environment win over the file's (the
   deployment's own settings override the file's defaults);
3. ``--pid FILE`` once the process knows it will serve; removed when it stops;
4. ``--user`` / ``--group`` once every listening socket is open, so that a port below 1024
   can be bound as root and served by nobody.  UNIX sockets are handed over to the new
   owner (as gunicorn does), whose to change their mode then is.  A pid file stays
   where the new user may not remove it (a folder only root writes to).

Under ``--reload`` the supervising process does all this; its child, which serves,
keeps the directory and environment it inherits and only puts the import path back
(``sys.path`` is not inherited).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import re
import socket
import sys
from collections.abc import Iterable, MutableMapping

from thor_gateway.serving.config import ConfigError, Settings

__all__ = [
    "PidFile",
    "drop_privileges",
    "parse_env_file",
    "prepare",
    "resolve_user",
]

log = logging.getLogger("thor_gateway.server")

# KEY=VALUE, with an optional ``export``; a key is a shell variable name.
_ASSIGNMENT = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_DOUBLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def prepare(settings: Settings, *, serving_child: bool = False) -> None:
    """Steps 1 and 2 of the module docstring; raises :class:`ConfigError`."""
    if not serving_child:
        if settings.umask is not None:
            os.umask(int(settings.umask, 8))
        if settings.chdir is not None:
            try:
                os.chdir(settings.chdir)
            except OSError as error:
                raise ConfigError("--chdir", error.strerror or str(error)) from None
    for entry in reversed(settings.pythonpath):
        path = os.path.abspath(entry)
        if path not in sys.path:
            sys.path.insert(0, path)
    if settings.env_file is not None and not serving_child:
        try:
            with open(settings.env_file, encoding="utf-8") as file:
                values = parse_env_file(file)
        except OSError as error:
            raise ConfigError("--env-file", error.strerror or str(error)) from None
        except ValueError as error:
            raise ConfigError(f"--env-file {settings.env_file}", str(error)) from None
        load_environment(values, os.environ)


def parse_env_file(lines: Iterable[str]) -> dict[str, str]:
    """The variables of a dotenv-style file; raises ``ValueError`` naming the line.

    ``KEY=VALUE`` per line, ``export KEY=VALUE`` too; blank lines and ``#`` comments are
    skipped.  A value may be 'single-quoted' (taken as it is), "double-quoted" (with
    ``\\n``, ``\\t``, ``\\"`` and ``\\\\`` escapes) or bare (up to a `` #`` comment,
    trimmed).  Nothing is expanded: ``$HOME`` stays ``$HOME``.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = _ASSIGNMENT.fullmatch(text)
        if match is None:
            raise ValueError(f"line {number}: expected KEY=VALUE, got {text[:40]!r}")
        values[match[1]] = _value(match[2], number)
    return values


def _value(text: str, number: int) -> str:
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = _closing_quote(text, quote)
        if end < 0:
            raise ValueError(f"line {number}: unterminated {quote} quote")
        rest = text[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ValueError(f"line {number}: text after the closing quote: {rest[:20]!r}")
        inner = text[1:end]
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: _DOUBLE_ESCAPES.get(m[1], "\\" + m[1]), inner)
    return re.split(r"\s+#", text, maxsplit=1)[0].strip()


def _closing_quote(text: str, quote: str) -> int:
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\" and quote == '"':
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return -1


def load_environment(values: dict[str, str], environ: MutableMapping[str, str]) -> None:
    """Set ``values`` in ``environ``, leaving the variables already set alone."""
    for key, value in values.items():
        environ.setdefault(key, value)


def resolve_user(settings: Settings) -> tuple[int | None, int | None]:
    """(uid, gid) of ``--user`` / ``--group`` (None: unchanged); raises :class:`ConfigError`.

    A user without ``--group`` gets the user's own primary group.
    """
    uid = gid = None
    if settings.user is not None:
        try:
            entry = pwd.getpwuid(int(settings.user)) if settings.user.isdigit() else None
            entry = entry or pwd.getpwnam(settings.user)
        except (KeyError, OverflowError):
            raise ConfigError("--user", f"no such user: {settings.user!r}") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if settings.group is not None:
        try:
            group = settings.group
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, OverflowError):
            raise ConfigError("--group", f"no such group: {settings.group!r}") from None
    return uid, gid


def drop_privileges(settings: Settings, sockets: Iterable[socket.socket]) -> None:
    """Step 4: become ``--user`` / ``--group``; raises :class:`ConfigError`."""
    uid, gid = resolve_user(settings)
    if (uid is None or uid == os.getuid()) and (gid is None or gid == os.getgid()):
        return  # nothing to change (or done already: the child of --reload inherits it)
    for sock in sockets:
        if sock.family == socket.AF_UNIX and isinstance(sock.getsockname(), str):
            with contextlib.suppress(OSError):  # an inherited socket may not be ours
                os.chown(sock.getsockname(), -1 if uid is None else uid, -1 if gid is None else gid)
    try:
        if gid is not None:
            if uid is not None:
                os.initgroups(pwd.getpwuid(uid).pw_name, gid)
            else:
                os.setgroups([gid])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
    except OSError as error:
        where = "--user" if settings.user is not None else "--group"
        raise ConfigError(where, f"cannot switch: {error.strerror or error}") from None
    log.info("running as uid %d, gid %d", os.getuid(), os.getgid())


class PidFile:
    """``--pid FILE``: this process's id, written at start and removed at the end."""

    def __init__(self, path: str | None) -> None:
        self.path = os.path.abspath(path) if path else None

    def __enter__(self) -> PidFile:
        if self.path is not None:
            try:
                with open(self.path, "w", encoding="ascii") as file:
                    file.write(f"{os.getpid()}\n")
            except OSError as error:
                raise ConfigError("--pid", f"{self.path}: {error.strerror or error}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path is None:
            return
        try:  # only our own: a new gateway may have taken the file over
            with open(self.path, encoding="ascii") as file:
                mine = file.read().strip() == str(os.getpid())
            if mine:
                os.unlink(self.path)
        except OSError:  # gone, or no longer ours to remove after --user
            pass
