"""The repeat filter of the error log: the first few alike lines, then a count."""

from __future__ import annotations

import io
import logging

from thor_gateway.operations.log_limit import RepeatFilter, SummarisingHandler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def logger_writing_to(stream: io.StringIO, clock: Clock, burst: int = 3) -> logging.Logger:
    handler = SummarisingHandler(stream, RepeatFilter(burst, 10.0, clock=clock))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.log_limit.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_alike_lines_pass_up_to_the_burst_then_are_counted() -> None:
    out, clock = io.StringIO(), Clock()
    log = logger_writing_to(out, clock)
    for i in range(900):
        log.warning("pool saturated: 503 for GET /%d", i)
    log.info("something else")  # another kind: passes
    assert out.getvalue().splitlines() == [
        "WARNING pool saturated: 503 for GET /0",
        "WARNING pool saturated: 503 for GET /1",
        "WARNING pool saturated: 503 for GET /2",
        "INFO something else",
    ]
    clock.now += 10.0
    log.warning("pool saturated: 503 for GET /%d", 900)
    assert out.getvalue().splitlines()[4:] == [
        "WARNING pool saturated: 503 for GET /899 [repeated 897 more times in 10 s]",
        "WARNING pool saturated: 503 for GET /900",  # a new interval
    ]


def test_what_is_held_back_is_reported_when_the_handler_closes() -> None:
    out, clock = io.StringIO(), Clock()
    log = logger_writing_to(out, clock, burst=1)
    log.info("client %s left", "a")
    log.info("client %s left", "b")
    log.info("client %s left", "c")
    handler = log.handlers[0]
    clock.now += 2.0
    handler.close()
    assert out.getvalue().splitlines() == [
        "INFO client a left",
        "INFO client c left [repeated 2 more times in 2 s]",
    ]


def test_exceptions_of_different_types_are_different_kinds() -> None:
    out, clock = io.StringIO(), Clock()
    log = logger_writing_to(out, clock, burst=1)
    for exc in (ValueError("x"), KeyError("y"), ValueError("z")):
        try:
            raise exc
        except Exception:
            log.exception("error in app")
    text = out.getvalue()
    assert text.count("ValueError") == 1
    assert text.count("KeyError") == 1
