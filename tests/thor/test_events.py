"""EventEmitter: Node semantics with Thor's names."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import thor
from thor.events import EventEmitter, UnhandledErrorEvent


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def listener(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


def test_on_emit_in_registration_order() -> None:
    ee, rec = EventEmitter(), Recorder()
    ee.on("x", rec.listener("a"))
    ee.on("x", rec.listener("b"))
    ee.emit("x", 1, 2)
    ee.emit("y", 3)  # no listener: nothing happens
    assert rec.calls == [("a", (1, 2)), ("b", (1, 2))]


def test_once_fires_once() -> None:
    ee, rec = EventEmitter(), Recorder()
    ee.once("x", rec.listener("once"))
    ee.on("x", rec.listener("on"))
    ee.emit("x", 1)
    ee.emit("x", 2)
    assert rec.calls == [("once", (1,)), ("on", (1,)), ("on", (2,))]
    assert len(ee.listeners("x")) == 1


def test_remove_listener_finds_once_wrapped() -> None:
    ee, rec = EventEmitter(), Recorder()
    fn = rec.listener("a")
    ee.once("x", fn)
    assert ee.listeners("x") == [fn]
    ee.remove_listener("x", fn)
    ee.emit("x")
    assert rec.calls == []
    assert ee.events() == []


def test_remove_listener_removes_most_recent_instance() -> None:
    ee, calls = EventEmitter(), []
    ee.on("x", calls.append)
    ee.once("x", calls.append)
    ee.remove_listener("x", calls.append)  # the once-wrapped one, added last
    ee.emit("x", 1)
    ee.emit("x", 2)
    assert calls == [1, 2]


def test_once_removes_itself_not_an_equal_listener() -> None:
    ee, calls = EventEmitter(), []
    ee.on("x", calls.append)
    ee.once("x", calls.append)
    ee.emit("x", 1)  # both run; only the once wrapper goes
    ee.emit("x", 2)
    assert calls == [1, 1, 2]


def test_bound_methods_compare_equal() -> None:
    ee, rec = EventEmitter(), Recorder()
    ee.on("x", rec.calls.append)
    ee.remove_listener("x", rec.calls.append)  # a new bound method object
    assert ee.listeners("x") == []


def test_remove_listener_errors() -> None:
    ee = EventEmitter()
    ee.remove_listener("never", print)  # unknown event: nothing (as in Thor 0.17)
    ee.on("x", print)
    with pytest.raises(ValueError, match="not a listener"):
        ee.remove_listener("x", repr)


def test_remove_listeners_and_events() -> None:
    ee = EventEmitter()
    ee.on("a", print)
    ee.on("b", print)
    ee.on("c", print)
    assert ee.events() == ["a", "b", "c"]
    ee.remove_listeners("a", "nope")
    assert ee.events() == ["b", "c"]
    ee.remove_listeners()
    assert ee.events() == []


def test_forget_listeners_drops_the_sink_too() -> None:
    class Sink:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def a(self) -> None:
            self.calls.append("a")

    ee, sink = EventEmitter(), Sink()
    ee.on("b", print)
    ee.sink(sink)
    ee.forget_listeners()
    assert ee.events() == []
    ee.emit("a")
    assert sink.calls == []


def test_listener_added_during_emit_is_not_called_by_it() -> None:
    ee, calls = EventEmitter(), []

    def first() -> None:
        calls.append("first")
        ee.on("x", lambda: calls.append("added"))

    ee.on("x", first)
    ee.on("x", lambda: calls.append("second"))
    ee.emit("x")
    assert calls == ["first", "second"]
    ee.emit("x")
    assert calls[2:] == ["first", "second", "added"]


def test_single_listener_adding_during_emit() -> None:
    ee, calls = EventEmitter(), []

    def only() -> None:
        calls.append("only")
        ee.on("x", lambda: calls.append("added"))

    ee.on("x", only)
    ee.emit("x")
    assert calls == ["only"]


def test_listener_removed_during_emit_still_runs_in_it() -> None:
    """A snapshot, as in Node (Thor 0.17 skipped it)."""
    ee, calls = EventEmitter(), []

    def second() -> None:
        calls.append("second")

    def first() -> None:
        calls.append("first")
        if second in ee.listeners("x"):
            ee.remove_listener("x", second)

    ee.on("x", first)
    ee.on("x", second)
    ee.emit("x")
    ee.emit("x")
    assert calls == ["first", "second", "first"]


def test_once_in_snapshot_of_nested_emit_runs_once() -> None:
    ee, calls = EventEmitter(), []

    def reenter(depth: int) -> None:
        if depth == 0:
            ee.emit("x", 1)

    ee.on("x", reenter)
    ee.once("x", calls.append)
    ee.emit("x", 0)
    assert calls == [1]  # the outer emit's snapshot does not call it again
    assert ee.listeners("x") == [reenter]


def test_once_wrapper_after_remove_listeners_during_emit() -> None:
    ee, calls = EventEmitter(), []
    ee.on("x", lambda: ee.remove_listeners("x"))
    ee.once("x", lambda: calls.append("once"))
    ee.emit("x")  # the snapshot still calls the wrapper; it must not fail
    assert calls == ["once"]
    assert ee.events() == []


def test_error_without_listener_raises() -> None:
    ee = EventEmitter()
    with pytest.raises(KeyError, match="boom"):
        ee.emit("error", KeyError("boom"))
    with pytest.raises(UnhandledErrorEvent, match="not an exception"):
        ee.emit("error", "not an exception")
    caught: list[BaseException] = []
    ee.on("error", caught.append)
    error = ValueError("handled")
    ee.emit("error", error)
    assert caught == [error]


def test_sink_receives_events_without_listener() -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def data(self, chunk: bytes) -> None:
            self.seen.append(("data", chunk))

        def error(self, err: Exception) -> None:
            self.seen.append(("error", err))

    ee, sink = EventEmitter(), Sink()
    ee.sink(sink)
    err = OSError("x")
    ee.emit("data", b"abc")
    ee.emit("error", err)  # the sink handles it: no raise
    ee.emit("nothing")  # no such method: ignored
    ee.on("data", lambda chunk: None)
    ee.emit("data", b"not to sink")
    assert sink.seen == [("data", b"abc"), ("error", err)]


def test_exception_in_listener_propagates_to_emitter() -> None:
    ee = EventEmitter()

    def boom() -> None:
        raise RuntimeError("listener")

    ee.on("x", boom)
    with pytest.raises(RuntimeError, match="listener"):
        ee.emit("x")


def test_on_decorator() -> None:
    ee, calls = EventEmitter(), []

    @thor.on(ee)
    def ping(value: int) -> None:
        calls.append(("ping", value))

    @thor.on(ee, "pong")
    def other_name(value: int) -> None:
        calls.append(("pong", value))

    ee.emit("ping", 1)
    ee.emit("pong", 2)
    assert calls == [("ping", 1), ("pong", 2)]
    assert ping.__name__ == "ping"  # returned unchanged


class Picklable(EventEmitter):
    def __init__(self) -> None:
        super().__init__()
        self.value = 42


def test_pickle_drops_listeners() -> None:
    obj = Picklable()
    obj.on("x", print)
    copy = pickle.loads(pickle.dumps(obj))
    assert copy.value == 42
    assert copy.events() == []
    assert obj.events() == ["x"]
