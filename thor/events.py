"""A NodeJS-style event emitter with Thor's names.

Theory of operation: an emitter keeps, per event name, a list of listeners.
``emit`` calls the listeners registered when it starts, in registration order
(a snapshot, as in Node: a listener added during an emit is not called by that
emit; one removed during it is still called by it).

Emitting ``'error'`` with no listener raises, as in Node: an error nobody
handles must not vanish.  If the first argument is an exception it is raised
as is, otherwise it is wrapped in :class:`UnhandledErrorEvent`.

``sink(obj)`` names a fallback: when an event has no listener, ``obj.<event>``
is called if it exists.  Thor 0.17 ran each listener in the ``contextvars``
context captured when it was registered; this emitter does not (it costs a
context switch per call on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["EventEmitter", "UnhandledErrorEvent", "on"]

Listener = Callable[..., Any]
F = TypeVar("F", bound=Listener)


class UnhandledErrorEvent(Exception):
    """An ``'error'`` event was emitted with no listener and no sink for it."""


class _Once:
    """Wraps a listener so that it removes itself before its first call.

    ``fired`` guards against a second call from the snapshot of an emit that
    was already in progress when a nested emit ran it (Node does the same).
    """

    __slots__ = ("emitter", "event", "fired", "listener")

    def __init__(self, emitter: EventEmitter, event: str, listener: Listener) -> None:
        self.emitter = emitter
        self.event = event
        self.listener = listener
        self.fired = False

    def __call__(self, *args: Any) -> Any:
        if self.fired:
            return None
        self.fired = True
        self.emitter._remove_exact(self.event, self)
        return self.listener(*args)


def _matches(candidate: Listener, listener: Listener) -> bool:
    # ``==`` rather than ``is``: bound methods are new objects at each access.
    if candidate is listener or candidate == listener:
        return True
    return isinstance(candidate, _Once) and candidate.listener == listener


class EventEmitter:
    """Node-style events: ``on``, ``once``, ``emit``, ``remove_listener``..."""

    __events: dict[str, list[Listener]]
    __sink: object | None

    def __init__(self) -> None:
        self.__events = {}
        self.__sink = None

    def on(self, event: str, listener: Listener) -> None:
        """Call ``listener(*args)`` every time ``event`` is emitted."""
        listeners = self.__events.get(event)
        if listeners is None:
            self.__events[event] = [listener]
        else:
            listeners.append(listener)

    def once(self, event: str, listener: Listener) -> None:
        """Call ``listener`` the next time ``event`` is emitted, then forget it."""
        self.on(event, _Once(self, event, listener))

    def remove_listener(self, event: str, listener: Listener) -> None:
        """Forget ``listener`` (or its ``once`` wrapper) for ``event``.

        If it was added more than once, the most recently added one goes (as
        in Node).  Nothing happens when ``event`` has no listener at all;
        ValueError when it has listeners but not this one (as in Thor 0.17).
        """
        listeners = self.__events.get(event)
        if not listeners:
            return
        for i in range(len(listeners) - 1, -1, -1):
            if _matches(listeners[i], listener):
                self._remove_at(event, listeners, i)
                return
        raise ValueError(f"{listener!r} is not a listener for {event!r}")

    def _remove_exact(self, event: str, listener: Listener) -> None:
        listeners = self.__events.get(event)
        if listeners:
            for i, candidate in enumerate(listeners):
                if candidate is listener:
                    self._remove_at(event, listeners, i)
                    return

    def _remove_at(self, event: str, listeners: list[Listener], i: int) -> None:
        # Replace the list rather than mutate it, so that an emit in progress
        # keeps iterating over its snapshot.
        remaining = listeners[:i] + listeners[i + 1 :]
        if remaining:
            self.__events[event] = remaining
        else:
            del self.__events[event]

    def remove_listeners(self, *events: str) -> None:
        """Forget every listener of ``events``, or of all events if none is named."""
        if events:
            for event in events:
                self.__events.pop(event, None)
        else:
            self.__events = {}

    def forget_listeners(self) -> None:
        """Drop every listener and the sink, once the emitter will emit nothing more.

        Listeners are often closures or bound methods that refer back to the emitter; left
        in place, a finished object (an exchange) would sit in a reference cycle that only
        the garbage collector frees.
        """
        self.__events = {}
        self.__sink = None

    def listeners(self, event: str) -> list[Listener]:
        """The listeners of ``event``, in the order they will be called."""
        return [fn.listener if isinstance(fn, _Once) else fn for fn in self.__events.get(event, ())]

    def events(self) -> list[str]:
        """The names of events that have listeners."""
        return list(self.__events)

    def emit(self, event: str, *args: Any) -> None:
        """Call the listeners of ``event`` with ``args``."""
        listeners = self.__events.get(event)
        if listeners:
            if len(listeners) == 1:
                listeners[0](*args)
            else:
                # ``on`` appends in place, so iterate over a snapshot.
                for listener in tuple(listeners):
                    listener(*args)
            return
        sink = self.__sink
        if sink is not None:
            method = getattr(sink, event, None)
            if method is not None:
                method(*args)
                return
        if event == "error":
            if args and isinstance(args[0], BaseException):
                raise args[0]
            raise UnhandledErrorEvent(f"unhandled 'error' event: {args!r}")

    def sink(self, obj: object) -> None:
        """Send events that have no listener to ``obj.<event>(*args)``."""
        self.__sink = obj

    def __getstate__(self) -> dict[str, Any]:
        # Listeners are closures and bound methods; pickled objects drop them.
        state = self.__dict__.copy()
        state[f"_{EventEmitter.__name__}__events"] = {}
        state[f"_{EventEmitter.__name__}__sink"] = None
        return state


def on(obj: EventEmitter, event: str | None = None) -> Callable[[F], F]:
    """Decorator: register the function as a listener of ``obj``.

    The event defaults to the function's name::

        @thor.on(server)
        def exchange(ex): ...
    """

    def decorate(fn: F) -> F:
        obj.on(event or fn.__name__, fn)
        return fn

    return decorate
