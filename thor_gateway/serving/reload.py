"""``--reload`` (development): restart the server when a ``.py`` file changes.

Theory of operation.  The reloading process (the supervisor) opens the
listening sockets, then runs the real server as a child process
(``python -m thor_gateway`` with the same arguments), which inherits the
sockets: a restart never refuses a connection; it only waits in the listen
queue while the new child starts.  The child is told, through the
environment, which descriptors to serve on and not to reload itself.

What is watched: every ``*.py`` file under each mounted app's directory (the
directory of its top-level package, or of the module file), or under the
``--reload-dir`` directories when given, plus the files matching a
``--reload-include`` glob (``*.html``, ``templates/*.j2``: matched against the
name and the path below the watched directory), skipping hidden directories,
``__pycache__`` and virtual environments.  Polling the
modification times every ``POLL`` seconds needs nothing outside the standard
library and works on every filesystem (inotify does not see changes made on
some network and container mounts); it costs one ``stat`` per file per poll,
so trees are capped at ``MAX_FILES`` files.

A change: SIGTERM to the child (which drains), then a new child.  A child whose
app cannot be loaded (a syntax error, say) does not exit: it answers every
request with 500 and the error (:func:`serve_load_error`, on the listeners' own
settings: TLS, ``--proxy-protocol``, limits), so that a browser
shows what is wrong instead of waiting on a socket nobody accepts from, until
the next change restarts it.  A child that exits by itself is started again at
the next change.  SIGTERM/SIGINT to the supervisor stop the child and end with
its exit status.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import thor.loop
from thor.http.server import HttpServer
from thor_gateway.routing.router import Route, Router
from thor_gateway.serving.config import Settings
from thor_gateway.serving.process_setup import drop_privileges
from thor_gateway.serving.server import Listeners, server_limits, tls_context

__all__ = [
    "LISTEN_FDS",
    "METRICS_FD",
    "load_error_servers",
    "serve_load_error",
    "snapshot",
    "supervise",
    "watched_dirs",
]

log = logging.getLogger("thor_gateway.reload")
LISTEN_FDS = "THOR_GATEWAY_LISTEN_FDS"
METRICS_FD = "THOR_GATEWAY_METRICS_FD"
POLL = 0.5
MAX_FILES = 20000
STOP_TIMEOUT = 5.0  # seconds the error page's child may take to answer what it accepted
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "env"}


def watched_dirs(settings: Settings) -> list[str]:
    """The app directories to watch (see the module docstring)."""
    if settings.reload_dir:
        return [os.path.abspath(folder) for folder in settings.reload_dir]
    dirs: list[str] = []
    for mount in settings.all_mounts():
        top = mount.app.partition(":")[0].split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            continue
        folder = os.path.dirname(os.path.abspath(spec.origin))
        if folder not in dirs:
            dirs.append(folder)
    return dirs or [os.getcwd()]


def _watched_files(folder: str, include: tuple[str, ...]) -> Iterator[str]:
    for root, subdirs, files in os.walk(folder):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".py") or _matches(name, os.path.relpath(path, folder), include):
                yield path


def _matches(name: str, relative: str, include: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in include)


def snapshot(dirs: list[str], include: tuple[str, ...] = ()) -> dict[str, float]:
    """{path: mtime} of the watched files: ``*.py`` and the ``include`` globs."""
    seen: dict[str, float] = {}
    for folder in dirs:
        for path in _watched_files(folder, include):
            if len(seen) >= MAX_FILES:
                return seen
            try:
                seen[path] = os.stat(path).st_mtime
            except OSError:
                continue
    return seen


def supervise(settings: Settings, argv: list[str]) -> int:
    """Run the server in a child and restart it on changes; returns its exit status."""
    listeners = Listeners(settings)
    drop_privileges(settings, listeners.all())
    dirs = watched_dirs(settings)
    include = tuple(settings.reload_include)
    patterns = ", ".join(("*.py", *include))
    log.info("reloading on changes under %s (%s)", ", ".join(dirs), patterns)
    stop: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop.append(signum))
    children: list[subprocess.Popen[bytes]] = []

    def pass_on(signum: int, frame: object) -> None:  # SIGUSR1: the child reopens its logs
        if children and children[-1].poll() is None:
            children[-1].send_signal(signum)

    signal.signal(signal.SIGUSR1, pass_on)
    env = dict(os.environ)
    env["THOR_GATEWAY_RELOADER_CHILD"] = "1"
    env[LISTEN_FDS] = ",".join(str(s.fileno()) for s in listeners.app)
    if listeners.metrics is not None:
        env[METRICS_FD] = str(listeners.metrics.fileno())
    fds = [s.fileno() for s in listeners.all()]
    command = [sys.executable, "-m", "thor_gateway", *argv]
    try:
        child = subprocess.Popen(command, env=env, pass_fds=fds)
        children.append(child)
        files = snapshot(dirs, include)
        while not stop:
            time.sleep(POLL)
            now = snapshot(dirs, include)
            if now == files:
                continue
            changed = sorted(p for p in now.keys() | files.keys() if now.get(p) != files.get(p))
            files = now
            log.info("%s changed: restarting", changed[0])
            _stop(child, settings.graceful_timeout)
            child = subprocess.Popen(command, env=env, pass_fds=fds)
            children.append(child)
        return _stop(child, settings.graceful_timeout)
    finally:
        listeners.close()


def _stop(child: subprocess.Popen[bytes], timeout: float) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


class LoadErrorPage:
    """Every request: 500 with the app's load error (the reloader's child, development only)."""

    def __init__(self, error: str) -> None:
        text = (
            "thor-gateway: the app could not be loaded; "
            "the server restarts when a watched file changes.\n\n" + error + "\n"
        )
        self.body = text.encode("utf-8", "replace")

    def handle(self, exchange: Any, request: Any) -> None:
        exchange.response_start(
            500,
            "Internal Server Error",
            [
                (b"Content-Type", b"text/plain; charset=utf-8"),
                (b"Content-Length", str(len(self.body)).encode()),
                (b"Cache-Control", b"no-store"),
            ],
        )
        exchange.response_body(self.body)
        exchange.response_done([])

    def startup(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)

    def shutdown(self, done: Callable[[BaseException | None], None]) -> None:
        done(None)


def load_error_servers(
    settings: Settings, listeners: Listeners, error: Exception, loop: thor.loop.Loop
) -> list[HttpServer]:
    """The servers that stand in for the app on its listeners, each request answered 500
    with ``error``: the listeners' own HTTP settings (TLS, ``--proxy-protocol``, limits), so
    a connection opens as the gateway's would (a balancer's PROXY header first, say)."""
    router = Router([Route(b"", LoadErrorPage(str(error)))], health_path=b"", ready_path=b"")
    limits = server_limits(settings)
    tls = tls_context(settings)
    servers = []
    for sock in listeners.app:
        server = HttpServer(
            sock=sock,
            loop=loop,
            tls_context=tls if sock.family != socket.AF_UNIX else None,
            **limits,
        )
        server.on("exchange", router.on_exchange)
        servers.append(server)
    return servers


def serve_load_error(settings: Settings, listeners: Listeners, error: Exception) -> int:
    """In the reloader's child: answer 500 with ``error`` until told to stop (a change)."""
    loop = thor.loop.default()
    servers = load_error_servers(settings, listeners, error, loop)

    pending = list(servers)

    def stopped(server: HttpServer) -> None:
        if server in pending:
            pending.remove(server)
            if not pending:
                loop.stop()

    def stop() -> None:
        # As a drain does: what was accepted, or waits in the queue, is answered first.
        for server in list(pending):
            server.on("stop", lambda server=server: stopped(server))
            server.graceful_shutdown(STOP_TIMEOUT)
        if not pending:
            loop.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    supervisor = os.getppid()

    def watch_supervisor() -> None:  # orphaned (the reloader was killed): nobody restarts us
        if os.getppid() != supervisor:
            stop()
        else:
            loop.schedule(1.0, watch_supervisor)

    loop.schedule(1.0, watch_supervisor)
    log.error("the app cannot be loaded: answering 500 with the error until a file changes")
    loop.run()
    return 0
