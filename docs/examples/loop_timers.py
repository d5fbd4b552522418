"""Timers, a call from another thread, and an error that does not stop the loop."""

import logging
import sys
import threading

import thor.loop

logging.basicConfig(
    stream=sys.stdout, level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
)
loop = thor.loop.make()


def say(text: str) -> None:
    print(text)


loop.schedule(0.02, say, "timer: 20 ms")
loop.schedule(0.01, say, "timer: 10 ms (fires first)")
cancelled = loop.schedule(0.015, say, "never printed")
cancelled.delete()


def fail() -> None:
    raise ValueError("a failing callback is logged; the loop goes on")


loop.schedule(0.025, fail)


def report_thread(sender: str) -> None:
    print(f"posted by {sender}, run by {threading.current_thread().name}")


def worker() -> None:
    # run_in_loop is the only call that is safe from another thread.
    loop.run_in_loop(report_thread, threading.current_thread().name)


loop.schedule(0.03, threading.Thread(target=worker, name="worker").start)
loop.schedule(0.05, loop.stop)
loop.run()
loop.close()
print("loop stopped")
