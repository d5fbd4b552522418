"""A closed TCP connection lets go of its listeners, so its owner is freed without the
collector (issue 16, finding 4: every connection a fault closed was a reference cycle)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

import thor
from tests.thor._core_helpers import Net, run_until
from thor.loop import Loop


@pytest.fixture
def net(loop: Loop) -> Iterator[Net]:
    tracker = Net(loop)
    yield tracker
    tracker.close()


class Owner:
    """Holds its connection and listens to it with bound methods: the usual cycle."""

    def __init__(self, conn: thor.TcpConnection) -> None:
        self.conn = conn
        self.gone = False
        conn.on("data", self.on_data)
        conn.on("close", self.on_close)
        conn.on("disconnect", self.on_disconnect)

    def on_data(self, data: bytes) -> None:
        pass

    def on_close(self) -> None:
        self.conn.close()

    def on_disconnect(self) -> None:
        self.gone = True


@pytest.mark.parametrize("how", ["peer closes", "abort"])
def test_a_closed_connection_and_its_owner_are_freed_by_reference_counting(
    net: Net, how: str
) -> None:
    server = net.server("127.0.0.1", 0)
    owners: list[Owner] = []
    server.on("connect", lambda conn: owners.append(Owner(conn)))
    client = net.client()
    clients: list[thor.TcpConnection] = []
    client.on("connect", clients.append)
    client.connect("127.0.0.1", server.port, connect_timeout=2)
    run_until(net.loop, lambda: bool(owners and clients), 5)
    gc.collect()
    gc.disable()
    try:
        owner = weakref.ref(owners[0])
        if how == "abort":
            owners[0].conn.abort()
        else:
            clients[0].close()
            run_until(net.loop, lambda: owners[0].gone, 5)
        assert owners[0].gone
        assert owners[0].conn.listeners("data") == []
        net.conns.remove(owners[0].conn)  # the tracker's reference (it is closed)
        owners.clear()
        assert owner() is None  # freed at once: no cycle left for the collector
    finally:
        gc.enable()
