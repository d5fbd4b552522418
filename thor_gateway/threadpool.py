"""A bounded pool of worker threads for blocking apps (WSGI).

Theory of operation: the loop thread calls :meth:`ThreadPool.submit`; the task
goes on a :class:`queue.SimpleQueue` (a C deque with a lock: the cheapest
hand-off CPython has, see ``benchmarks/handoff_bench.py``) and one of the
worker threads runs it.  At most ``threads + max_queue`` tasks are admitted at a
time (running or waiting); ``submit`` refuses more by returning False, so the
caller answers 503 at once instead of letting a backlog grow without bound.

Threads are started on demand, up to ``threads``, and live until
:meth:`shutdown`.  They are daemon threads: an app stuck in a blocking call
must not keep the process alive after shutdown gave up on it.

A task reports its results to the loop itself (``loop.run_in_loop``); the pool
only runs callables and counts them.  An exception that escapes a task is
logged and the worker goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue

__all__ = ["ThreadPool"]

log = logging.getLogger("thor_gateway.threadpool")

Task = Callable[[], object]


class ThreadPool:
    """Run tasks in at most ``threads`` threads, with at most ``max_queue`` waiting."""

    def __init__(self, threads: int = 8, max_queue: int = 64, name: str = "thor-worker") -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.threads = threads
        self.max_queue = max_queue
        self.name = name
        self._queue: SimpleQueue[Task | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0  # tasks submitted and not finished (running or waiting)
        self._workers: list[threading.Thread] = []
        self._closed = False

    @property
    def admitted(self) -> int:
        """Tasks running or waiting for a thread."""
        return self._admitted

    @property
    def waiting(self) -> int:
        """Tasks waiting for a thread (an estimate: threads may be picking them up)."""
        return max(0, self._admitted - len(self._workers))

    @property
    def full(self) -> bool:
        """True when :meth:`submit` would refuse a task."""
        return self._closed or self._admitted >= self.threads + self.max_queue

    def submit(self, task: Task) -> bool:
        """Queue ``task``; False (and nothing queued) if the pool is saturated or shut down."""
        with self._lock:
            if self._closed or self._admitted >= self.threads + self.max_queue:
                return False
            self._admitted += 1
            started = len(self._workers)
            # One thread per admitted task, up to the limit.
            start_one = self._admitted > started and started < self.threads
            if start_one:
                worker = threading.Thread(
                    target=self._work, name=f"{self.name}-{started}", daemon=True
                )
                self._workers.append(worker)
        if start_one:
            worker.start()
        self._queue.put(task)
        return True

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Refuse new tasks, let queued ones finish, stop the threads.

        With ``wait``, block up to ``timeout`` seconds for the threads to end; returns
        True if they all ended.  Never call it with ``wait`` from a worker thread.
        """
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        if not wait:
            return False
        for worker in workers:
            worker.join(timeout)
        return not any(worker.is_alive() for worker in workers)

    def _work(self) -> None:
        get = self._queue.get
        lock = self._lock
        while True:
            task = get()
            if task is None:
                return
            try:
                task()
            except BaseException:
                log.exception("task %r raised", task)
            finally:
                with lock:
                    self._admitted -= 1
