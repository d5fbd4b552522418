"""The Tunnel on fake connections and a fake clock: order, flow control, ends, idle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from thor.events import EventEmitter
from thor_gateway.proxy.tunnel import TRANSITIONS, Tunnel, TunnelState
from thor_gateway.proxy.upstreams import Target, Upstream


class FakeConn(EventEmitter):
    """What a Tunnel uses of a TcpConnection, recording the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.paused = False
        self.calls: list[str] = []
        self.tcp_connected = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause(self, paused: bool) -> None:
        self.paused = paused

    def shutdown_write(self) -> None:
        self.calls.append("shutdown_write")

    def close(self) -> None:
        self.calls.append("close")


class FakeTimer:
    def __init__(self, loop: FakeLoop, when: float, callback: Callable[[], None]) -> None:
        self.loop, self.when, self.callback = loop, when, callback

    def delete(self) -> None:
        self.loop.timers.remove(self)


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def schedule(self, delta: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self, self.now + delta, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in [t for t in self.timers if t.when <= self.now]:
            self.timers.remove(timer)
            timer.callback()


def make(
    idle: float = 0.0, **kwargs: Any
) -> tuple[Tunnel, FakeConn, FakeConn, Upstream, list[Tunnel]]:
    member = Upstream(Target("http", "127.0.0.1", 80, b""), "127.0.0.1")
    member.active = 1  # taken when the handshake was sent
    ended: list[Tunnel] = []
    client, upstream = FakeConn(), FakeConn()
    tunnel = Tunnel(
        client, upstream, loop=FakeLoop(), idle_timeout=idle, member=member,  # type: ignore[arg-type]
        on_close=ended.append, **kwargs,
    )  # fmt: skip
    return tunnel, client, upstream, member, ended


def test_leftovers_go_first_then_data_both_ways_counted() -> None:
    tunnel, client, upstream, member, _ = make()
    tunnel.start(b"early", b"first")
    assert upstream.written == [b"early"]
    assert client.written == [b"first"]
    client.emit("data", b"abc")
    upstream.emit("data", b"de")
    assert upstream.written == [b"early", b"abc"]
    assert client.written == [b"first", b"de"]
    assert (tunnel.sent, tunnel.received) == (8, 7)
    assert (member.tunnel_sent, member.tunnel_received, member.tunnels) == (8, 7, 1)


def test_a_full_write_buffer_stops_reading_the_other_side() -> None:
    tunnel, client, upstream, _, _ = make()
    tunnel.start()
    client.emit("pause", True)  # the client is not reading what we write
    assert upstream.paused
    client.emit("pause", False)
    assert not upstream.paused
    upstream.emit("pause", True)
    assert client.paused


def test_eofs_are_half_closes_until_both_sides_sent_one() -> None:
    tunnel, client, upstream, member, ended = make()
    tunnel.start()
    client.emit("close")
    assert upstream.calls == ["shutdown_write"]
    assert tunnel.state is TunnelState.HALF_CLOSED
    upstream.emit("data", b"last words")
    assert client.written == [b"last words"]
    upstream.emit("close")
    assert client.calls == ["shutdown_write"]
    assert tunnel.state is TunnelState.CLOSED
    assert ended == [tunnel]
    assert (member.active, member.tunnels) == (0, 0)
    client.emit("disconnect")  # the sockets go afterwards: nothing counted twice
    upstream.emit("disconnect")
    assert ended == [tunnel]
    assert (member.active, member.tunnels) == (0, 0)


@pytest.mark.parametrize("side", ["client", "upstream"])
def test_one_side_gone_closes_the_other(side: str) -> None:
    tunnel, client, upstream, member, ended = make()
    tunnel.start()
    gone, other = (client, upstream) if side == "client" else (upstream, client)
    gone.emit("close")
    gone.emit("disconnect")
    assert other.calls == ["shutdown_write", "close"]
    assert tunnel.state is TunnelState.CLOSED
    assert ended == [tunnel]
    assert member.active == 0


def test_idle_closes_both_and_traffic_defers_it() -> None:
    tunnel, client, upstream, _, ended = make(idle=10.0)
    tunnel.start()
    loop = tunnel.loop
    assert isinstance(loop, FakeLoop)
    loop.advance(6)
    client.emit("data", b"x")  # at 106: idle from then
    loop.advance(6)  # 112: the first check finds 6 s of quiet, waits 4 more
    assert ended == []
    loop.advance(3.9)
    assert ended == []
    loop.advance(0.2)
    assert ended == [tunnel]
    assert client.calls == ["close"]
    assert upstream.calls == ["close"]
    assert "idle" in tunnel.why
    assert loop.timers == []


def test_no_timer_without_an_idle_timeout_and_none_left_after_the_end() -> None:
    tunnel, _client, _, _, _ = make(idle=0)
    tunnel.start()
    loop = tunnel.loop
    assert isinstance(loop, FakeLoop)
    assert loop.timers == []
    tunnel2, client2, _, _, _ = make(idle=5)
    tunnel2.start()
    client2.emit("disconnect")
    assert tunnel2.loop.timers == []  # type: ignore[attr-defined]


def test_a_side_lost_before_the_switch_ends_the_tunnel_at_once() -> None:
    tunnel, client, upstream, _, ended = make(idle=5)
    client.tcp_connected = False
    tunnel.start()
    assert ended == [tunnel]
    assert upstream.calls == ["close"]


def test_the_transition_table_is_the_whole_state_machine() -> None:
    assert {state for state, _ in TRANSITIONS} == {TunnelState.OPEN, TunnelState.HALF_CLOSED}
    with pytest.raises(KeyError):
        TRANSITIONS[TunnelState.CLOSED, "eof"]
