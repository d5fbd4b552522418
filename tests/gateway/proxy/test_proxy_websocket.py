"""The ``websockets`` client and server (an independent RFC 6455 implementation) talking
through the proxy: in-process, and through ``thor-gateway --proxy`` as issue 12 reported."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from tests.gateway.proxy.upgrade_support import make_proxy, open_tunnels
from tests.gateway.proxy_support import wait_for

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402
from websockets.sync.server import Server, ServerConnection, serve  # noqa: E402

Live = Any


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


@contextmanager
def ws_server(**options: Any) -> Iterator[Server]:
    server = serve(echo, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)


def http_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.socket.getsockname()[1]}"


def test_text_binary_large_and_control_frames_pass(live_server: Callable[..., Live]) -> None:
    with ws_server(subprotocols=["chat"], max_size=None) as upstream:
        live, handler = make_proxy(live_server, [http_url(upstream)])
        url = f"ws://127.0.0.1:{live.port}/ws/room"
        with connect(url, subprotocols=["chat"], max_size=None, open_timeout=5) as ws:
            assert ws.subprotocol == "chat"  # negotiated end to end
            # permessage-deflate (RFC 7692), offered by both by default, is end to end too.
            assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            assert ws.response.headers["Via"] == "1.1 thor"
            ws.send("héllo")
            assert ws.recv(timeout=5) == "héllo"
            ws.send(b"\x00\x01\x02")
            assert ws.recv(timeout=5) == b"\x00\x01\x02"
            big = bytes(range(256)) * 8192  # 2 MiB, fragmented by nobody but TCP
            ws.send(big)
            assert ws.recv(timeout=10) == big
            assert ws.ping(b"p").wait(5)
            assert open_tunnels(live, handler) == 1
        assert ws.close_code == 1000  # the closing handshake went both ways
        assert wait_for(lambda: open_tunnels(live, handler) == 0)


def test_many_connections_at_once(live_server: Callable[..., Live]) -> None:
    with ws_server() as upstream:
        live, handler = make_proxy(live_server, [http_url(upstream)])
        url = f"ws://127.0.0.1:{live.port}/ws"
        with ExitStack() as stack:
            sockets = [stack.enter_context(connect(url, open_timeout=5)) for _ in range(20)]
            assert open_tunnels(live, handler) == 20
            for i, ws in enumerate(sockets):
                ws.send(f"m{i}")
            assert [ws.recv(timeout=5) for ws in sockets] == [f"m{i}" for i in range(20)]
        assert wait_for(lambda: open_tunnels(live, handler) == 0)


def test_the_gateway_cli_relays_websocket(start_gateway: Any) -> None:
    """Issue 12: ``thor-gateway --proxy /=http://ws-service`` answered 426; now it relays."""
    with ws_server() as upstream:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/={http_url(upstream)}")
        url = gateway.url.replace("http://", "ws://") + "/socket"
        with connect(url, open_timeout=5) as ws:
            for i in range(10):
                ws.send(f"n{i}")
                assert ws.recv(timeout=5) == f"n{i}"
        assert ws.close_code == 1000
        assert gateway.stop() == 0


def test_shutdown_keeps_tunnels_until_the_graceful_timeout_then_closes_them(
    start_gateway: Any,
) -> None:
    with ws_server() as upstream:
        gateway = start_gateway(
            "-b", "127.0.0.1:0", "--proxy", f"/={http_url(upstream)}", "--graceful-timeout", "1"
        )
        url = gateway.url.replace("http://", "ws://") + "/socket"
        with connect(url, open_timeout=5) as ws:
            ws.send("before")
            assert ws.recv(timeout=5) == "before"
            signalled = time.monotonic()
            gateway.signal(signal.SIGTERM)
            gateway.wait_for_line("draining")
            ws.send("while draining")  # still relayed until the graceful timeout ends
            assert ws.recv(timeout=5) == "while draining"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            # Bytes, not frames: the proxy closes TCP, it cannot send a close frame.
            assert time.monotonic() - signalled >= 0.9, "cut before the graceful timeout"
        assert gateway.wait(20) == 0
        gateway.wait_for_line("closing 1 open WebSockets")


def test_tls_on_both_hops(live_server: Callable[..., Live], tmp_path: Any) -> None:
    """wss:// to the gateway, wss:// to the upstream: the tunnel joins two TLS connections."""
    import ssl

    trustme = pytest.importorskip("trustme")
    from thor.tls import server_context

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    upstream_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(upstream_tls)
    client_tls = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with ws_server(ssl=upstream_tls, max_size=None) as upstream:
        port = upstream.socket.getsockname()[1]
        live = live_server(tls_context=server_context(str(tmp_path / "server.pem")))
        handler = make_proxy(
            lambda: live, [f"https://localhost:{port}"], tls_ca_file=str(tmp_path / "ca.pem")
        )[1]
        with connect(f"wss://localhost:{live.port}/ws", ssl=client_tls, max_size=None) as ws:
            big = b"\x01" * (1 << 20)
            for _ in range(3):
                ws.send(big)
                assert ws.recv(timeout=10) == big
            ws.send("done")
            assert ws.recv(timeout=5) == "done"
        assert ws.close_code == 1000
        assert wait_for(lambda: open_tunnels(live, handler) == 0)
