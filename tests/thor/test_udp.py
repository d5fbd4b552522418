"""UDP endpoints over loopback (127.0.0.1 and ::1)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

import pytest

import thor
from thor.loop import Loop
from thor.testing import run_for
from thor.udp import UdpEndpoint

Datagram = tuple[bytes, str, int]


@pytest.fixture
def endpoints(loop: Loop) -> Iterator[Callable[[], UdpEndpoint]]:
    """Makes endpoints on ``loop`` and shuts them all down at teardown."""
    made: list[UdpEndpoint] = []

    def make() -> UdpEndpoint:
        endpoint = UdpEndpoint(loop)
        made.append(endpoint)
        return endpoint

    yield make
    for endpoint in made:
        endpoint.shutdown()


def collect(endpoint: UdpEndpoint) -> list[Datagram]:
    received: list[Datagram] = []
    endpoint.on("datagram", lambda data, host, port: received.append((data, host, port)))
    return received


def echo(endpoint: UdpEndpoint) -> None:
    endpoint.on("datagram", lambda data, host, port: endpoint.send(data, host, port))


def stop_when(loop: Loop, predicate: Callable[[], bool]) -> None:
    def check() -> None:
        if predicate():
            loop.stop()
        else:
            loop.schedule(0.002, check)

    loop.schedule(0, check)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_round_trip(loop: Loop, endpoints: Callable[[], UdpEndpoint], host: str) -> None:
    server, client = endpoints(), endpoints()
    server.bind(host, 0)
    client.bind(host, 0)
    assert server.host == host
    assert server.port
    echo(server)
    received = collect(client)
    client.send(b"ping", host, server.port)
    stop_when(loop, lambda: bool(received))
    run_for(loop, 5)
    assert received == [(b"ping", host, server.port)]
    assert thor.UdpEndpoint is UdpEndpoint


def test_unbound_sender_gets_replies(loop: Loop, endpoints: Callable[[], UdpEndpoint]) -> None:
    server, client = endpoints(), endpoints()
    server.bind("::1", 0)
    echo(server)
    received = collect(client)
    client.send(b"from an ephemeral port", b"::1", server.port)  # a bytes host works too
    stop_when(loop, lambda: bool(received))
    run_for(loop, 5)
    assert received == [(b"from an ephemeral port", "::1", server.port)]
    assert client.host is None  # never bound explicitly


def test_dual_stack_wildcard_reports_plain_ipv4(
    loop: Loop, endpoints: Callable[[], UdpEndpoint]
) -> None:
    server, client = endpoints(), endpoints()
    server.bind(None, 0)
    echo(server)
    seen = collect(server)
    received = collect(client)
    client.bind("127.0.0.1", 0)
    client.send(b"v4 to a dual-stack socket", "127.0.0.1", server.port)
    stop_when(loop, lambda: bool(received))
    run_for(loop, 5)
    assert seen == [(b"v4 to a dual-stack socket", "127.0.0.1", client.port)]
    assert received == [(b"v4 to a dual-stack socket", "127.0.0.1", server.port)]


def test_names_are_resolved(loop: Loop, endpoints: Callable[[], UdpEndpoint]) -> None:
    server, client = endpoints(), endpoints()
    server.bind("localhost", 0)  # asynchronous: through thor.dns
    assert server.port is None
    received = collect(server)

    def send_when_bound() -> None:
        if server.port is None:
            loop.schedule(0.002, send_when_bound)
        else:
            client.send(b"by name", "localhost", server.port)

    loop.schedule(0, send_when_bound)
    stop_when(loop, lambda: bool(received))
    run_for(loop, 5)
    assert server.host == "127.0.0.1"  # /etc/hosts
    assert received[0][:2] == (b"by name", "127.0.0.1")


def test_unknown_name_is_a_socket_error(loop: Loop, endpoints: Callable[[], UdpEndpoint]) -> None:
    client = endpoints()
    errors: list[tuple[str, int, str]] = []
    client.on("socket_error", lambda *args: (errors.append(args), loop.stop()))
    client.send(b"lost", "no-such-host.invalid", 9)
    assert errors == []  # reported on the loop, never from inside send()
    run_for(loop, 5)
    assert errors[0][0] == "gai"
    assert "no-such-host.invalid" in errors[0][2]


def test_pause_holds_datagrams_until_resumed(
    loop: Loop, endpoints: Callable[[], UdpEndpoint]
) -> None:
    paused, probe, client = endpoints(), endpoints(), endpoints()
    paused.bind("127.0.0.1", 0)
    probe.bind("127.0.0.1", 0)
    held = collect(paused)
    probed = collect(probe)
    paused.pause(True)
    # Loopback delivers during sendto(), so once the probe has its datagram,
    # the paused socket has been readable for as long: it would have read it.
    client.send(b"held", "127.0.0.1", paused.port)
    client.send(b"probe", "127.0.0.1", probe.port)
    stop_when(loop, lambda: bool(probed))
    run_for(loop, 5)
    loop.call_soon(loop.stop)  # one more full iteration
    run_for(loop, 5)
    assert held == []
    paused.pause(False)
    stop_when(loop, lambda: bool(held))
    run_for(loop, 5)
    assert [data for data, _, _ in held] == [b"held"]


def test_oversize_datagram_is_refused(loop: Loop, endpoints: Callable[[], UdpEndpoint]) -> None:
    server, client = endpoints(), endpoints()
    server.bind("127.0.0.1", 0)
    received = collect(server)
    with pytest.raises(ValueError, match="max_dgram"):
        client.send(b"x" * (client.max_dgram + 1), "127.0.0.1", server.port)
    biggest = bytes(range(256)) * (client.max_dgram // 256) + b"!" * (client.max_dgram % 256)
    client.send(biggest, "127.0.0.1", server.port)  # the largest one goes through whole
    stop_when(loop, lambda: bool(received))
    run_for(loop, 5)
    assert received[0][0] == biggest


def test_family_mismatch_is_a_socket_error(
    loop: Loop, endpoints: Callable[[], UdpEndpoint]
) -> None:
    client = endpoints()
    client.bind("127.0.0.1", 0)
    errors: list[tuple[str, int, str]] = []
    client.on("socket_error", lambda *args: errors.append(args))
    client.send(b"v6 from a v4 socket", "::1", 9)
    assert len(errors) == 1
    assert errors[0][:2] == ("socket", errno.EAFNOSUPPORT)


def test_shutdown_releases_the_socket(loop: Loop) -> None:
    endpoint = UdpEndpoint(loop)
    endpoint.bind("127.0.0.1", 0)
    assert loop.fd_count() == 1
    endpoint.shutdown()
    assert loop.fd_count() == 0
    endpoint.send(b"ignored after shutdown", "127.0.0.1", 9)
    assert endpoint.sock is None


def test_bind_to_unknown_name_is_a_socket_error(
    loop: Loop, endpoints: Callable[[], UdpEndpoint]
) -> None:
    endpoint = endpoints()
    errors: list[tuple[str, int, str]] = []
    endpoint.on("socket_error", lambda *args: (errors.append(args), loop.stop()))
    endpoint.bind("no-such-host.invalid", 0)
    run_for(loop, 5)
    assert errors[0][0] == "gai"
    assert endpoint.sock is None
