"""What a start would find wrong before it serves: one set of checks for ``--check-config``
and for every start.

Theory of operation.  ``--check-config`` promises that a start gets past configuration, so
it must check what a start checks, no less: the command line calls :func:`check_settings`
before it starts anything (the reloader, the master or the only process), and
``--check-config`` calls the same function, then :func:`check_apps`.  What the start finds
out only later -- in a worker, after the fork -- is checked here without side effects:

- the TLS files load; the access-log format renders, and its file can be opened for
  appending (its folder exists and is writable); the trusted-proxy list parses, and with
  ``--proxy-protocol`` admits some peer of every listener;
- every ``[[proxy]]`` route would build (upstreams, settings, balancer:
  :func:`thor_gateway.proxy.handler.check_route`), and the folder of a route's disk cache
  (``--cache-dir``, or ``dir`` in its ``cache`` table) is a writable folder or can be
  created (its nearest existing parent is a writable folder); nothing is created here;
- every TCP bind's host resolves, and every UNIX socket's folder exists.  The ports are
  not bound: checking a configuration while the server it describes runs is normal.

:func:`check_apps` imports the apps and tells their interface.  Without ``--preload`` the
master runs it in a child process (:func:`check_apps_in_child`), so that nothing of the
apps stays in the master and every worker it forks imports the code on disk (SIGHUP
deploys new code).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys

from thor_gateway.operations.access_log import AccessLog
from thor_gateway.routing.forwarded import ProxyTrust
from thor_gateway.serving.binds import check_proxy_protocol
from thor_gateway.serving.config import Bind, ConfigError, Settings
from thor_gateway.serving.loading import AppLoadError, detect_interface, import_app

__all__ = ["check_apps", "check_apps_in_child", "check_settings"]


def check_settings(settings: Settings) -> None:
    """Raise the :class:`ConfigError` a start would meet before serving (module docstring)."""
    from thor_gateway.serving.process_setup import resolve_user
    from thor_gateway.serving.server import access_logfile, tls_context

    tls_context(settings)
    resolve_user(settings)
    logfile = access_logfile(settings)
    if logfile:
        try:
            AccessLog("-", settings.access_logformat)
        except (ValueError, TypeError) as error:
            raise ConfigError("access_logformat", str(error)) from None
        if logfile != "-":
            _check_writable("access_logfile", logfile)
    try:
        ProxyTrust(settings.forwarded_allow_ips)
    except ValueError as error:
        raise ConfigError("forwarded_allow_ips", str(error)) from None
    check_proxy_protocol(settings)
    from thor_gateway.cache.disk import route_dir
    from thor_gateway.cache.handler import cache_settings
    from thor_gateway.proxy.handler import check_route, settings_from_flags

    defaults = settings_from_flags(settings.upstream_connect_timeout, settings.upstream_timeout)
    for route in settings.proxy:
        folder = settings.cache_dir and route_dir(settings.cache_dir, route.prefix)
        try:
            options = {**defaults, **route.options}
            cache = options.pop("cache", None)
            cached = cache_settings(
                settings.cache if cache is None else cache,
                {"max_size": settings.cache_size, "dir": folder},
            )  # (as the server builds it)
            check_route(route.upstreams, options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"proxy {route.prefix}", str(error)) from None
        if cached is not None and cached.dir:
            name = "cache_dir" if cached.dir == folder else f"proxy {route.prefix}"
            _check_cache_dir(name, cached.dir)
    binds = settings.listen_addresses()
    if settings.metrics_bind is not None:
        binds.append(settings.metrics_bind)
    for bind in binds:
        _check_bind(bind)


def _check_writable(name: str, path: str) -> None:
    """``path`` can be opened for appending (without creating it now)."""
    if os.path.exists(path):
        if os.path.isdir(path) or not os.access(path, os.W_OK):
            raise ConfigError(name, f"cannot write to {path!r}")
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(name, f"the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(name, f"cannot create a file in {folder!r}")


def _check_cache_dir(name: str, path: str) -> None:
    """``path`` is a folder the disk cache can write in, or one it can create (the store
    makes it with its parents at start)."""
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise ConfigError(
            name, f"cannot create the cache folder {path!r}: {existing!r} is not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            raise ConfigError(name, f"cannot write in the cache folder {path!r}")
        raise ConfigError(
            name, f"cannot create the cache folder {path!r}: {existing!r} is not writable"
        )


def _check_bind(bind: Bind) -> None:
    if bind.kind == "tcp" and bind.host not in ("", "*"):
        try:
            socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            problem = getattr(error, "strerror", None) or str(error)
            raise ConfigError(f"bind {bind}", f"the host does not resolve: {problem}") from None
    elif bind.kind == "unix":
        folder = os.path.dirname(os.path.abspath(bind.path))
        if not os.path.isdir(folder):
            raise ConfigError(f"bind {bind}", f"the folder {folder!r} does not exist")


def check_apps(settings: Settings) -> None:
    """Import every mounted app and tell its interface; raises :class:`AppLoadError`."""
    for mount in settings.all_mounts():
        obj = import_app(mount.app, mount.factory)
        if mount.interface == "auto":
            detect_interface(obj, f"mount {mount.prefix}={mount.app}")


def check_apps_in_child(settings: Settings) -> None:
    """:func:`check_apps` in a forked child, which reports a failure through a pipe."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: import, report, exit; nothing of the apps goes back
        os.close(read_fd)
        code = 0
        try:
            check_apps(settings)
        except AppLoadError as error:
            os.write(write_fd, f"{error.where}\0{error.problem}".encode(errors="replace"))
            code = 2
        except BaseException as error:  # the user's code may raise anything, SystemExit too
            os.write(write_fd, f"app\0{type(error).__name__}: {error}".encode(errors="replace"))
            code = 2
        finally:
            with contextlib.suppress(OSError):
                os.close(write_fd)
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        chunks.append(pipe.read())  # until the child exits (EOF)
    _, status = os.waitpid(pid, 0)
    report = b"".join(chunks).decode(errors="replace")
    if report:
        where, _, problem = report.partition("\0")
        raise AppLoadError(where, problem)
    if os.waitstatus_to_exitcode(status) != 0:
        raise AppLoadError("app", f"importing the apps ended the process ({status})")
