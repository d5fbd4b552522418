"""A bounded pool of worker threads for blocking apps (WSGI), built for CPython's GIL.

Theory of operation.  The loop thread calls :meth:`ThreadPool.submit`; tasks
wait in a deque and worker threads take them in order.  At most ``threads +
max_queue`` tasks are admitted at a time (running or waiting); ``submit``
refuses more by returning False, so the caller answers 503 at once instead of
letting a backlog grow without bound.

Wake-ups are the cost.  Only one thread runs Python at a time, so a worker
woken while another thread holds the GIL only adds a context switch, and a
thread that wakes another at every task makes the two ping-pong per request.
So, with a ``loop``:

- tasks submitted during one loop iteration wake at most ONE worker, at the
  end of the iteration (``call_soon``), and none while a worker is awake: an
  awake worker takes the next task when it finishes its current one;
- a worker that finds the deque empty calls ``on_idle`` (the WSGI handler
  wakes the loop there, once for the whole burst of responses it posted);
- while tasks wait, the loop ticks every ``tick`` seconds: a tick that finds
  tasks waiting and none taken since the last tick means the awake workers
  are blocked (in I/O, a sleep, a lock), so it wakes one more worker
  (starting threads on demand, up to ``threads``).  The tick also delivers
  what a worker posted before taking its next task.  With nothing waiting
  the loop does not tick at all, however long the running tasks take.

Without a loop (tests, tools) every submit wakes a worker (or starts one, up
to ``threads``), as a plain pool does.

Threads are daemon threads: an app stuck in a blocking call must not keep the
process alive after :meth:`shutdown` gave up on it.  An exception that escapes
a task is logged and the worker goes on.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from thor.loop import Loop

__all__ = ["ThreadPool"]

log = logging.getLogger("thor_gateway.threadpool")

Task = Callable[[], object]


class ThreadPool:
    """Run tasks in at most ``threads`` threads, with at most ``max_queue`` waiting."""

    def __init__(
        self,
        threads: int = 8,
        max_queue: int = 64,
        name: str = "thor-worker",
        *,
        loop: Loop | None = None,
        on_idle: Callable[[], object] | None = None,
        tick: float = 0.001,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.threads = threads
        self.max_queue = max_queue
        self.name = name
        self.loop = loop
        self.on_idle = on_idle
        self.tick = tick
        self._tasks: deque[Task] = deque()
        self._cond = threading.Condition(threading.Lock())
        # Under _cond:
        self._admitted = 0  # tasks submitted and not finished (running or waiting)
        self._awake = 0  # workers running a task or looking for one
        self._idle = 0  # workers waiting to be woken
        self._taken = 0  # tasks taken so far: the tick's measure of progress
        self._closed = False
        self._workers: list[threading.Thread] = []
        # Loop thread only:
        self._wake_scheduled = False
        self._ticking = False
        self._taken_at_tick = 0

    @property
    def admitted(self) -> int:
        """Tasks running or waiting for a thread."""
        return self._admitted

    @property
    def waiting(self) -> int:
        """Tasks waiting for a thread."""
        return len(self._tasks)

    @property
    def full(self) -> bool:
        """True when :meth:`submit` would refuse a task."""
        return self._closed or self._admitted >= self.threads + self.max_queue

    def submit(self, task: Task) -> bool:
        """Queue ``task``; False (and nothing queued) if the pool is saturated or shut down.

        With a ``loop``, call it on the loop's thread only (it arms the loop's timers).
        """
        with self._cond:
            if self.full:
                return False
            self._admitted += 1
            self._tasks.append(task)
            if self.loop is None:
                self._wake_one()  # no tick to notice a stuck worker: one thread per task
            elif not self._awake and not self._wake_scheduled:
                # Else an awake worker takes it next (the tick watches for stalls).
                self._wake_scheduled = True
                self.loop.call_soon(self._wake_at_end_of_iteration)
        if self.loop is not None and not self._ticking:
            self._ticking = True
            self._taken_at_tick = self._taken
            self.loop.schedule(self.tick, self._on_tick)
        return True

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Refuse new tasks, let queued ones finish, stop the threads.

        With ``wait``, block up to ``timeout`` seconds for the threads to end; returns
        True if they all ended.  Never call it with ``wait`` from a worker thread.
        """
        with self._cond:
            self._closed = True
            self._awake += self._idle
            self._idle = 0
            self._cond.notify_all()
            if self._tasks and not self._awake:
                self._wake_one()  # queued tasks still run
            workers = list(self._workers)
        if not wait:
            return False
        for worker in workers:
            worker.join(timeout)
        return not any(worker.is_alive() for worker in workers)

    # ------------------------------------------------------------- loop thread

    def _wake_at_end_of_iteration(self) -> None:
        with self._cond:
            self._wake_scheduled = False
            if self._tasks and not self._awake:
                self._wake_one()

    def _on_tick(self) -> None:
        assert self.loop is not None
        with self._cond:
            if not self._tasks or self._closed:
                # Nothing waits: no stall to notice, and a worker that runs out of tasks
                # wakes the loop itself.  The next submit starts the tick again.
                self._ticking = False
                return
            if self._taken == self._taken_at_tick:
                self._wake_one()  # every awake worker is stuck: add one
            self._taken_at_tick = self._taken
        self.loop.schedule(self.tick, self._on_tick)

    def _wake_one(self) -> None:
        """Wake an idle worker, or start one if the limit allows (under _cond)."""
        if self._idle:
            self._idle -= 1
            self._awake += 1
            self._cond.notify()
        elif len(self._workers) < self.threads:
            self._awake += 1
            worker = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    # ----------------------------------------------------------- worker thread

    def _work(self) -> None:
        cond = self._cond
        tasks = self._tasks
        ran = False  # a task just ended: count it out with the next look at the deque
        while True:
            with cond:
                if ran:
                    self._admitted -= 1
                task = tasks.popleft() if tasks else None
                if task is not None:
                    self._taken += 1
            ran = False
            if task is None:
                if self.on_idle is not None:
                    self.on_idle()  # outside the lock: it may make a system call
                with cond:
                    if tasks:
                        continue  # more came meanwhile: still awake
                    self._awake -= 1
                    if self._closed:
                        return
                    self._idle += 1
                    cond.wait()  # _wake_one or shutdown counts us awake again
                continue
            try:
                task()
            except BaseException:
                log.exception("task %r raised", task)
            ran = True
