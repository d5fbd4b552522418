"""``--workers N``: a master process and N forked workers sharing the listening sockets.

Theory of operation.  The master opens every listening socket and checks that
the apps import (so that a bad app fails with exit status 2 before any fork),
then forks the workers.  Without ``--preload`` (the default, as in gunicorn)
that check runs in a child process that exits after it, so nothing of the apps
stays in the master: each worker imports the apps itself, from the files on
disk, and the workers a SIGHUP starts serve the code as it is now.  With
``--preload`` the master imports the apps itself before forking (workers start
faster and share those pages; SIGHUP then restarts them on the same code).
Each worker builds its own handlers, thread pools and loop and serves on the
inherited sockets; the kernel hands each new connection to one worker.  The master never accepts,
and it keeps the sockets open, so a connection that arrives while no worker is
accepting waits in the listen queue instead of being refused.

The master runs a small supervision loop (no Thor loop: it needs only
signals, child exits and one pipe per worker that says "I am listening"):

- a worker that dies is replaced (after a pause if they keep dying at once);
  a worker whose startup hooks fail (exit status 3), or that fails in any way
  before it listens (exit status 2), stops the whole server -- until one worker
  has listened.  From then on such a failure (new code that does not import,
  say) is logged in one line with the worker's reason, sent up its "ready"
  pipe, and the workers already serving go on (a bad deploy does not take the
  site down); the master tries again later, waiting longer each time;
- ``--max-requests`` (+ a random ``--max-requests-jitter``): the worker drains
  and exits by itself after that many requests; the master starts another;
- SIGHUP: rolling replacement, one worker at a time: start a new worker, wait
  until it listens, then SIGTERM the old one (which drains); a new worker that
  fails to start ends the replacement, and the old workers keep serving;
- SIGUSR1: passed on to every worker, which reopens its access log file;
- SIGTERM / SIGINT: SIGTERM to every worker; each drains within
  ``--graceful-timeout``; workers still alive 5 s after that are killed.
  Exit status 0 when every worker exited 0;
- ``--timeout``: each worker's loop writes a heartbeat byte to its pipe
  (the one that said "listening") a few times per timeout; a worker silent
  for ``--timeout`` seconds (its loop stuck in an app, a deadlock) gets
  SIGABRT, which makes it print every thread's traceback (:mod:`faulthandler`)
  and die, then SIGKILL if it is still there a second later; another worker
  replaces it.  A heartbeat on the loop proves the loop turns, which a thread
  of its own would not;
- ``--workers-max-rss``: each worker reads its resident size every second or
  so (a random part of a second more, so that workers started together do not
  sample together) and recycles itself, as ``--max-requests`` does, once past
  the limit (:mod:`thor_gateway.serving.memory`).
"""

from __future__ import annotations

import contextlib
import enum
import faulthandler
import logging
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

import thor.loop
from thor_gateway.serving.binds import describe
from thor_gateway.serving.checks import check_apps, check_apps_in_child
from thor_gateway.serving.config import ConfigError, Settings
from thor_gateway.serving.loading import AppLoadError
from thor_gateway.serving.memory import watch_rss
from thor_gateway.serving.process_setup import drop_privileges
from thor_gateway.serving.server import (
    EXIT_STARTUP_ERROR,
    EXIT_STARTUP_FAILED,
    Gateway,
    Listeners,
    log_routes,
    serve,
    startup_failed,
)

__all__ = ["Master"]

log = logging.getLogger("thor_gateway.workers")
KILL_GRACE = 5.0  # seconds after --graceful-timeout before SIGKILL
RESPAWN_PAUSE = 1.0  # between replacements of workers that die at once
MAX_RESPAWN_PAUSE = 30.0  # the longest wait after workers that could not start
QUICK_DEATH = 1.0
READY = b"r"  # first byte up a worker's ready pipe: it listens
FAILED = b"e"  # ... or: it could not start, and why (one line) follows
ABORT_GRACE = 1.0  # seconds between SIGABRT (traceback) and SIGKILL for a silent worker
EXIT_BAD_CONFIG = EXIT_STARTUP_ERROR


class Phase(enum.Enum):
    """The master's state."""

    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(slots=True)
class Worker:
    pid: int
    ready_fd: int  # read end; the worker writes b"r" once it listens, then b"h" heartbeats
    started: float
    ready: bool = False
    retiring: bool = False
    reason: str = ""  # why it could not start, as it said up its pipe
    last_beat: float = 0.0  # monotonic time of the last byte (or of the start)
    pipe_open: bool = True  # false once the worker's end is closed (it is exiting)
    aborted: float = 0.0  # when it was sent SIGABRT for --timeout


class Master:
    """Supervises the workers (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers: dict[int, Worker] = {}
        self.phase = Phase.RUNNING
        self.exit_status = 0
        self.to_replace: list[int] = []  # SIGHUP: old workers waiting for a successor
        self.successor: int | None = None
        self.stop_deadline = 0.0
        self._signals: list[int] = []
        self._wake_r, self._wake_w = os.pipe()
        self._next_spawn = 0.0
        self.metrics_dir: str | None = None
        self.listening = False  # in a worker: it told the master it listens
        self.served = False  # a worker has listened: a failing new one is not fatal
        self.failed_starts = 0  # in a row, since a worker last listened

    # ------------------------------------------------------------- running

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status."""
        # Fail before forking; the settings were checked by the command line.
        if self.settings.preload:
            check_apps(self.settings)  # imported here, once, for every worker
        else:
            check_apps_in_child(self.settings)
        self.listeners = Listeners(self.settings)
        drop_privileges(self.settings, self.listeners.all())
        if self.listeners.metrics is not None:
            self.metrics_dir = tempfile.mkdtemp(prefix="thor-gateway-metrics-")
        tls = self.settings.certfile is not None
        log_routes(self.settings)
        for sock in self.listeners.app:
            log.info("Listening at %s (pid %d)", describe(sock, tls), os.getpid())
        if self.listeners.metrics is not None:
            log.info("Metrics at %s/metrics", describe(self.listeners.metrics, False))
        self._install_signals()
        try:
            for _ in range(self.settings.workers):
                self._spawn()
            while self.workers or self.phase is Phase.RUNNING:
                self._wait(0.5)
                self._reap()
                self._handle_signals()
                self._tick()
        finally:
            self.listeners.close()
            signal.set_wakeup_fd(-1)
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("master stopped (pid %d)", os.getpid())
        return self.exit_status

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGCHLD,
            signal.SIGUSR1,
        ):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _wait(self, timeout: float) -> None:
        fds = [self._wake_r] + [w.ready_fd for w in self.workers.values() if w.pipe_open]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select
            return
        for fd in readable:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 512)
                continue
            for worker in self.workers.values():
                if worker.ready_fd == fd:
                    self._heard_from(worker)

    def _heard_from(self, worker: Worker) -> None:
        try:
            data = os.read(worker.ready_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its end: it is exiting; _reap will see it
            worker.pipe_open = False
            return
        worker.last_beat = time.monotonic()
        if worker.ready:
            return  # a heartbeat
        if data.startswith(FAILED):
            worker.reason = data[1:].decode("utf-8", "replace").strip()
        elif READY in data:
            worker.ready = self.served = True
            self.failed_starts = 0
            log.info("worker %d is listening", worker.pid)

    def _check_heartbeats(self) -> None:
        """``--timeout``: SIGABRT to a silent worker, SIGKILL a second later."""
        timeout = self.settings.timeout
        if not timeout:
            return
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.aborted:
                if now - worker.aborted > ABORT_GRACE:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
            elif worker.pipe_open and now - worker.last_beat > timeout:
                log.critical(
                    "worker %d timed out: its loop has not answered for %.0fs; killing it",
                    worker.pid,
                    now - worker.last_beat,
                )
                worker.aborted = now
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGABRT)

    def _tick(self) -> None:
        self._check_heartbeats()
        if self.phase is Phase.STOPPING:
            if time.monotonic() > self.stop_deadline:
                for pid in self.workers:
                    log.warning("worker %d did not stop in time: killing it", pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.stop_deadline = float("inf")
            return
        self._roll()
        missing = self.settings.workers - sum(not w.retiring for w in self.workers.values())
        if missing > 0 and self.successor is None and time.monotonic() >= self._next_spawn:
            self._spawn()

    # ------------------------------------------------------------- signals

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(signum)
            elif signum == signal.SIGUSR1:
                for pid in self.workers:  # each worker reopens its own file handle
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGUSR1)
            elif signum == signal.SIGHUP and self.phase is Phase.RUNNING:
                log.info("SIGHUP: replacing the workers one by one")
                self.to_replace = [pid for pid, w in self.workers.items() if not w.retiring]

    def _stop(self, signum: int) -> None:
        if self.phase is Phase.STOPPING:
            return
        log.info("%s: stopping the workers", signal.Signals(signum).name)
        self.phase = Phase.STOPPING
        # Close the master's copies first: the sockets must stop listening once
        # the last worker has drained its queue and closed its own copy.  A copy
        # left open here would keep queueing connections that nobody accepts,
        # to be reset when the master exits (gunicorn's lost backlog).
        self.listeners.close()
        self.stop_deadline = time.monotonic() + self.settings.graceful_timeout + KILL_GRACE
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _roll(self) -> None:
        """One step of a SIGHUP rolling replacement."""
        if self.successor is not None:
            new = self.workers.get(self.successor)
            if new is None:
                log.error("the new worker died before it listened; replacement abandoned")
                self.successor = None
                self.to_replace = []
            elif new.ready:
                self.successor = None
                old_pid = self.to_replace.pop(0)
                old = self.workers.get(old_pid)
                if old is not None:
                    old.retiring = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(old_pid, signal.SIGTERM)
            return
        while self.to_replace and self.to_replace[0] not in self.workers:
            self.to_replace.pop(0)
        if self.to_replace:
            self.successor = self._spawn()

    # ------------------------------------------------------------ children

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if not worker.ready and not worker.reason:
                self._heard_from(worker)  # the child is gone: this cannot block
            os.close(worker.ready_fd)
            code = os.waitstatus_to_exitcode(status)
            self._worker_exited(worker, code)

    def _worker_exited(self, worker: Worker, code: int) -> None:
        if self.phase is Phase.STOPPING:
            log.info("worker %d exited (%d)", worker.pid, code)
            # -SIGTERM: a worker that had not yet set up its handlers (just forked)
            # and so had nothing to drain.
            if code not in (0, -signal.SIGTERM) and self.exit_status == 0:
                self.exit_status = 1
            return
        if code in (EXIT_STARTUP_FAILED, EXIT_BAD_CONFIG) and self.served and not worker.ready:
            self._new_worker_failed(worker, code)
            return
        if code in (EXIT_STARTUP_FAILED, EXIT_BAD_CONFIG):
            log.error("worker %d failed to start its apps: stopping", worker.pid)
            self.exit_status = code
            self._stop(signal.SIGTERM)
            return
        if worker.retiring or code == 0:
            log.info("worker %d exited (%d)", worker.pid, code)
        else:
            log.warning("worker %d died (%d): starting another", worker.pid, code)
        if time.monotonic() - worker.started < QUICK_DEATH and code != 0:
            self._next_spawn = time.monotonic() + RESPAWN_PAUSE

    def _new_worker_failed(self, worker: Worker, code: int) -> None:
        """A new worker could not start, while others serve: report it, keep them."""
        reason = worker.reason or f"exit status {code}"
        if code == EXIT_STARTUP_FAILED:
            reason += " (an app's startup hook failed; its log is above)"
        if worker.pid == self.successor:
            self.successor = None
            self.to_replace = []
            keep = "the old workers keep serving; fix it and send SIGHUP again"
        else:
            keep = "the other workers keep serving"
        log.error("worker %d could not start: %s; %s", worker.pid, reason, keep)
        self.failed_starts += 1
        pause = min(MAX_RESPAWN_PAUSE, RESPAWN_PAUSE * 2**self.failed_starts)
        self._next_spawn = time.monotonic() + pause

    def _spawn(self) -> int:
        ready_r, ready_w = os.pipe()
        settings = self.settings
        limit = settings.max_requests
        if limit and settings.max_requests_jitter:
            limit += random.randint(0, settings.max_requests_jitter)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(ready_r)
            code = 1
            try:
                code = self._worker_main(ready_w, limit)
            except (ConfigError, AppLoadError) as error:
                headline, _, details = str(error).partition("\n")  # the user's traceback
                log.error("%s", headline, extra={"details": details})
                if not self.listening:  # else the pipe is closed, its number maybe reused
                    summary = error.summary if isinstance(error, AppLoadError) else str(error)
                    _say_why(ready_w, summary)
                code = EXIT_BAD_CONFIG
            except Exception as error:
                if self.listening:
                    log.exception("worker failed")
                else:  # not a worker to replace: the next would fail the same way
                    _say_why(ready_w, f"{type(error).__name__}: {error}")
                    code = startup_failed(error)
            except BaseException:
                log.exception("worker failed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        now = time.monotonic()
        self.workers[pid] = Worker(pid, ready_r, now, last_beat=now)
        log.info("started worker %d", pid)
        return pid

    def _worker_main(self, ready_w: int, max_requests: int) -> int:
        """In the forked child: reset what belongs to the master, then serve."""
        signal.set_wakeup_fd(-1)
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGCHLD,
        ):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until serve() handles it: never fatal
        os.close(self._wake_r)
        os.close(self._wake_w)
        for worker in self.workers.values():
            os.close(worker.ready_fd)
        # The inherited loop's selector is the master's epoll instance, shared by every
        # child: each worker renews it.  The loop object stays, because what the apps
        # built when the master imported them (a module-level client or proxy) is bound
        # to it.
        loop = thor.loop.default()
        loop.after_fork()
        master = os.getppid()
        gateway = Gateway(
            self.settings,
            self.listeners,
            loop=loop,
            multiprocess=True,
            max_requests=max_requests,
            metrics_dir=self.metrics_dir,
        )
        gateway.abort_on_second_signal = False  # Ctrl-C reaches workers and master alike

        def ready() -> None:
            os.write(ready_w, READY)  # kept open: heartbeats follow (--timeout)
            self.listening = True

        timeout = self.settings.timeout
        if timeout:
            # SIGABRT from the master (--timeout): every thread's traceback, then the end.
            faulthandler.enable(all_threads=True)
            os.set_blocking(ready_w, False)
            heartbeat(loop, ready_w, min(1.0, timeout / 4))

        def watch_master() -> None:
            if os.getppid() != master:
                log.warning("the master is gone: draining")
                gateway.drain()
            else:
                loop.schedule(1.0, watch_master)

        gateway.on_ready = ready
        loop.schedule(1.0, watch_master)
        if self.settings.workers_max_rss:
            watch_rss(gateway, self.settings.workers_max_rss)
        return serve(gateway)


def _say_why(ready_w: int, reason: str) -> None:
    """In a worker that cannot start: one line up its ready pipe, for the master's log."""
    line = reason.splitlines()[0] if reason else ""
    with contextlib.suppress(OSError):
        os.write(ready_w, FAILED + line.encode("utf-8", "replace")[:4000])


def heartbeat(loop: thor.loop.Loop, fd: int, interval: float) -> None:
    """Write a byte to the master every ``interval`` seconds, from the loop (``--timeout``)."""
    try:
        os.write(fd, b"h")
    except BlockingIOError:  # the master is behind on reading: it has heard enough
        pass
    except OSError:  # the master is gone (watch_master drains)
        return
    loop.schedule(interval, heartbeat, loop, fd, interval)
