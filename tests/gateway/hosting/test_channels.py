"""Django Channels under thor-gateway: the project of tests/gateway/channels_site (a
``ProtocolTypeRouter`` with Django for HTTP, consumers for WebSockets, behind Channels'
origin check), in a subprocess, with the ``websockets`` client as the peer."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from tests.gateway.gateway_helpers import Gateway

pytest.importorskip("channels")
pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

APP = "tests.gateway.channels_site.asgi:application"
SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.gateway.channels_site.settings"}


@pytest.fixture(scope="module")
def site() -> Iterator[Gateway]:
    gateway = Gateway(APP, "--port", "0", env=SETTINGS).wait_ready()
    yield gateway
    assert gateway.stop() == 0
    assert "Traceback" not in gateway.log, gateway.log


def open_ws(site: Gateway, path: str, **kw: object) -> ClientConnection:
    """A client the origin check lets in: its Origin is one of ALLOWED_HOSTS."""
    origin = f"http://127.0.0.1:{site.port}"
    return connect(f"ws://127.0.0.1:{site.port}{path}", origin=origin, open_timeout=10, **kw)


def test_http_goes_to_django(site: Gateway) -> None:
    with urllib.request.urlopen(site.url + "/", timeout=10) as response:
        assert response.read() == b"django over http"


def test_a_sync_websocket_consumer_echoes_text_and_bytes(site: Gateway) -> None:
    with open_ws(site, "/ws/echo/") as ws:
        ws.send("héllo")
        assert ws.recv(10) == "héllo"
        ws.send(b"\x00\xff" * 5000)
        assert ws.recv(10) == b"\x00\xff" * 5000


def test_an_async_consumer_with_a_url_parameter_a_subprotocol_and_its_close_code(
    site: Gateway,
) -> None:
    with open_ws(site, "/ws/async/thor/", subprotocols=["other", "chat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.recv(10) == "hello thor"
        ws.send("shout")
        assert ws.recv(10) == "SHOUT"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4000


def test_a_consumer_that_closes_before_accepting_refuses_with_403(site: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(site, "/ws/refuse/")
    assert refused.value.response.status_code == 403


def test_the_origin_check_refuses_another_origin_with_403(site: Gateway) -> None:
    url = f"ws://127.0.0.1:{site.port}/ws/echo/"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="http://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403


def test_a_group_broadcast_reaches_every_member_of_the_room(site: Gateway) -> None:
    with open_ws(site, "/ws/room/") as alice, open_ws(site, "/ws/room/") as bob:
        # Both joined once their handshakes were answered (group_add runs before accept).
        alice.send("hi all")
        assert alice.recv(10) == "hi all"
        assert bob.recv(10) == "hi all"
        bob.send("hi alice")
        assert alice.recv(10) == "hi alice"
        assert bob.recv(10) == "hi alice"
