"""HttpClient over HTTP/2 when the server refuses, resets, goes away or stays silent: an
``h2`` package server on a loopback socket, scripted per request (RFC 9113 §6.8, §8.7)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

import thor.loop
from tests.http.client_support import Clients, Result, fetch, run_until
from thor.http import error

# What the server does with a request: (connection, its h2 state, stream id, path, the
# number of the request on the server so far); it may answer, reset, or do nothing.
Script = Callable[["ScriptedServer", h2.connection.H2Connection, int, bytes, int], None]


def answer(conn: h2.connection.H2Connection, sid: int, body: bytes) -> None:
    conn.send_headers(sid, [(b":status", b"200"), (b"content-length", b"%d" % len(body))])
    conn.send_data(sid, body, end_stream=True)


class ScriptedServer:
    def __init__(self, script: Script, settings: dict[int, int] | None = None) -> None:
        self.script = script
        self.settings = settings
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self.socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        if self.settings:
            conn.local_settings = h2.settings.Settings(client=False, initial_values=self.settings)
        conn.initiate_connection()
        sock.settimeout(0.2)
        try:
            sock.sendall(conn.data_to_send())
            while not self.stopping:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        with self.lock:
                            self.requests += 1
                            count = self.requests
                        path = dict(event.headers)[b":path"]
                        self.script(self, conn, event.stream_id, path, count)
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)
                if conn.state_machine.state == h2.connection.ConnectionState.CLOSED:
                    return
        except OSError:
            return
        finally:
            sock.close()

    def close(self) -> None:
        self.stopping = True
        self.listener.close()
        for thread in self.threads:
            thread.join(5)
        self.thread.join(5)


@pytest.fixture
def clients(loop: thor.loop.Loop) -> Iterator[Clients]:
    made = Clients(loop)
    yield made
    made.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Script, settings: dict[int, int] | None = None) -> ScriptedServer:
        servers.append(ScriptedServer(script, settings))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_refused_stream_is_retried_at_once_even_for_post(
    loop: thor.loop.Loop, clients: Clients, scripted: Any
) -> None:
    def script(srv: ScriptedServer, conn: Any, sid: int, path: bytes, n: int) -> None:
        if n == 1:
            conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        else:
            answer(conn, sid, b"second")

    srv = scripted(script)
    client = clients(retry_limit=0)
    got = fetch(loop, client, "POST", f"h2c://127.0.0.1:{srv.port}/", body=b"x")
    assert got.body == b"second"  # §8.7: not processed, so safe to send again
    assert srv.requests == 2


def test_streams_above_goaways_last_stream_go_to_a_new_connection(
    loop: thor.loop.Loop, clients: Clients, scripted: Any
) -> None:
    def script(srv: ScriptedServer, conn: Any, sid: int, path: bytes, n: int) -> None:
        if srv.connections == 1 and sid == 3:
            conn.close_connection(last_stream_id=1)  # stream 3 (and later) not processed
            return
        if srv.connections == 1 and sid == 1:
            return  # answered below, after the GOAWAY
        answer(conn, sid, path)

    srv = scripted(script)
    client = clients()
    results = []
    for path in ("/a", "/b"):
        ex = client.exchange()
        results.append(Result(ex, loop, stop=False))
        ex.request_start("POST", f"h2c://127.0.0.1:{srv.port}{path}", [])
        ex.request_done([])
    run_until(loop, lambda: results[1].finished or results[0].finished)
    # /a (stream 1) was processed, but the server closed without answering: an error;
    # /b (stream 3) was refused by the GOAWAY and answered on a new connection.
    run_until(loop, lambda: all(r.finished for r in results))
    assert results[1].body == b"/b"
    assert isinstance(results[0].error, error.ConnectError)
    assert srv.connections == 2


def test_a_stream_reset_by_the_server_is_an_error(
    loop: thor.loop.Loop, clients: Clients, scripted: Any
) -> None:
    def script(srv: ScriptedServer, conn: Any, sid: int, path: bytes, n: int) -> None:
        conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)

    srv = scripted(script)
    got = fetch(loop, clients(), "GET", f"h2c://127.0.0.1:{srv.port}/")
    assert isinstance(got.error, error.UpstreamError)
    assert "INTERNAL_ERROR" in str(got.error)
    assert srv.requests == 1  # processed, as far as the client knows: not retried


def test_a_silent_server_times_the_stream_out(
    loop: thor.loop.Loop, clients: Clients, scripted: Any
) -> None:
    srv = scripted(lambda *args: None)
    got = fetch(loop, clients(read_timeout=0.3), "GET", f"h2c://127.0.0.1:{srv.port}/")
    assert isinstance(got.error, error.ReadTimeoutError)


def test_max_concurrent_streams_from_the_servers_settings_is_respected(
    loop: thor.loop.Loop, clients: Clients, scripted: Any
) -> None:
    pending: list[int] = []
    peak = [0]

    def script(srv: ScriptedServer, conn: Any, sid: int, path: bytes, n: int) -> None:
        if path == b"/warm":
            answer(conn, sid, b"ok")
            return
        pending.append(sid)
        peak[0] = max(peak[0], len(pending))
        if len(pending) == 2:  # answered in pairs: the client must keep two in flight
            for held in pending:
                answer(conn, held, b"ok")
            pending.clear()

    srv = scripted(script, {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2})
    client = clients()
    # The server's SETTINGS come first on the connection: a warm-up request reads them.
    assert fetch(loop, client, "GET", f"h2c://127.0.0.1:{srv.port}/warm").body == b"ok"
    results = []
    for i in range(12):
        ex = client.exchange()
        results.append(Result(ex, loop, stop=False))
        ex.request_start("GET", f"h2c://127.0.0.1:{srv.port}/{i}", [])
        ex.request_done([])
    run_until(loop, lambda: all(r.finished for r in results))
    assert all(r.body == b"ok" for r in results)
    assert peak[0] == 2
    assert srv.connections == 1
