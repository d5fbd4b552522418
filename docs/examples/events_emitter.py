"""EventEmitter: on, once, remove_listener, sink and the 'error' event."""

import thor
from thor.events import EventEmitter

door = EventEmitter()


@thor.on(door)
def knock(who: str) -> None:
    print(f"knock from {who}")


door.once("knock", lambda who: print(f"first visitor: {who}"))
door.emit("knock", "alice")
door.emit("knock", "bob")
door.remove_listener("knock", knock)
door.emit("knock", "carol")  # nobody listens any more: nothing happens
print("listeners left:", door.listeners("knock"))


class Logbook:
    """A sink: events without listeners go to its methods of the same name."""

    def ring(self, times: int) -> None:
        print(f"sink got ring x{times}")


door.sink(Logbook())
door.emit("ring", 2)

try:
    door.emit("error", OSError("nobody handles this"))
except OSError as error:
    print(f"unhandled 'error' raised: {error}")
door.on("error", lambda error: print(f"handled: {error}"))
door.emit("error", OSError("now somebody does"))
