"""The thread pool on a real loop: one wake-up per burst, more workers only when they are stuck."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import thor.loop
from thor.loop import Loop
from thor.testing import run_for
from thor_gateway.hosting.threadpool import ThreadPool


@pytest.fixture
def loop() -> Iterator[Loop]:
    the_loop = thor.loop.make()
    the_loop.fatal_errors = True
    yield the_loop
    the_loop.close()


def test_a_burst_of_tasks_wakes_one_worker(loop: Loop) -> None:
    """Tasks submitted in one iteration run on one thread; the loop is woken once, at the end."""
    idle_calls: list[int] = []
    pool = ThreadPool(8, 64, loop=loop, on_idle=lambda: idle_calls.append(1), tick=30.0)
    ran: list[str] = []

    def task() -> None:
        ran.append(threading.current_thread().name)
        if len(ran) == 20:
            loop.run_in_loop(loop.stop)

    def submit_burst() -> None:
        for _ in range(20):
            assert pool.submit(task)

    loop.call_soon(submit_burst)
    run_for(loop, 10)
    assert len(ran) == 20
    assert len(set(ran)) == 1, "one worker took the whole burst"
    assert len(pool._workers) == 1
    assert pool.shutdown(wait=True, timeout=5)
    assert idle_calls, "the worker said when it ran out of tasks"


def test_a_stuck_worker_gets_help_at_the_next_ticks(loop: Loop) -> None:
    """A task that blocks does not hold up the tasks queued behind it."""
    pool = ThreadPool(4, 16, loop=loop, tick=0.005)
    release = threading.Event()
    names: dict[str, str] = {}

    def blocker() -> None:
        names["blocker"] = threading.current_thread().name
        release.wait(10)

    def quick() -> None:
        names["quick"] = threading.current_thread().name
        loop.run_in_loop(loop.stop)

    def submit_both() -> None:
        assert pool.submit(blocker)
        assert pool.submit(quick)

    loop.call_soon(submit_both)
    try:
        run_for(loop, 10)
        assert not release.is_set()
        assert names["quick"] != names["blocker"], "another worker ran the queued task"
    finally:
        release.set()
    assert pool.shutdown(wait=True, timeout=5)
    assert pool.admitted == 0


def test_posted_results_reach_the_loop_when_the_worker_goes_idle(loop: Loop) -> None:
    """Results posted without a wake-up are delivered by the pool's on_idle wake."""
    pool = ThreadPool(2, 8, loop=loop, on_idle=loop.wake, tick=30.0)
    delivered: list[int] = []

    def deliver(i: int) -> None:
        delivered.append(i)
        if len(delivered) == 5:
            loop.stop()

    def make_task(i: int) -> object:
        return lambda: loop.post(deliver, i)

    def submit_all() -> None:
        for i in range(5):
            assert pool.submit(make_task(i))  # type: ignore[arg-type]

    loop.call_soon(submit_all)
    run_for(loop, 10)  # a 30 s tick: only on_idle can have woken the loop in time
    assert delivered == [0, 1, 2, 3, 4]
    assert pool.shutdown(wait=True, timeout=5)


def test_the_tick_stops_when_the_pool_is_idle(loop: Loop) -> None:
    pool = ThreadPool(2, 8, loop=loop, on_idle=loop.wake, tick=0.001)
    done = threading.Event()
    loop.call_soon(lambda: pool.submit(done.set))
    loop.schedule(0.2, loop.stop)
    run_for(loop, 10)
    assert done.is_set()
    assert not pool._ticking
    assert not [e for e in loop.scheduled_events() if e[1] == pool._on_tick]
    assert pool.shutdown(wait=True, timeout=5)


def test_shutdown_runs_the_queued_tasks(loop: Loop) -> None:
    pool = ThreadPool(1, 8, loop=loop, tick=30.0)
    ran: list[int] = []
    # Submitted, but the end-of-iteration wake never comes: the loop is not run.
    for i in range(3):
        assert pool.submit(lambda i=i: ran.append(i))  # type: ignore[misc]
    assert pool.shutdown(wait=True, timeout=5)
    assert ran == [0, 1, 2]
