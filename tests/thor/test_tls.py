"""TLS client and server over loopback, with certificates made by trustme."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

import thor
from thor.loop import Loop
from thor.tcp import TcpConnection, TcpServer
from thor.testing import run_for
from thor.tls import TlsClient, TlsConnection, TlsServer, client_context, server_context


@dataclass(frozen=True)
class Pki:
    cafile: str  # the CA the tests trust
    server: str  # key + chain for localhost, 127.0.0.1, ::1
    wrong_name: str  # key + chain for other.example only
    untrusted: str  # key + chain for localhost, from a CA nobody trusts
    client: str  # a client certificate from the trusted CA
    untrusted_client: str  # a client certificate from the untrusted CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, rogue = trustme.CA(), trustme.CA()

    def write(name: str, blob: trustme.Blob) -> str:
        path = base / name
        blob.write_to_path(str(path))
        return str(path)

    return Pki(
        cafile=write("ca.pem", ca.cert_pem),
        server=write(
            "server.pem",
            ca.issue_cert("localhost", "127.0.0.1", "::1").private_key_and_cert_chain_pem,
        ),
        wrong_name=write(
            "wrong.pem", ca.issue_cert("other.example").private_key_and_cert_chain_pem
        ),
        untrusted=write(
            "untrusted.pem", rogue.issue_cert("localhost").private_key_and_cert_chain_pem
        ),
        client=write(
            "client.pem", ca.issue_cert("client@example.test").private_key_and_cert_chain_pem
        ),
        untrusted_client=write(
            "rogue-client.pem",
            rogue.issue_cert("client@example.test").private_key_and_cert_chain_pem,
        ),
    )


@dataclass
class Tracker:
    """Everything a test opened, closed at teardown so that no socket leaks."""

    conns: list[TcpConnection] = field(default_factory=list)
    servers: list[TcpServer] = field(default_factory=list)
    socks: list[socket.socket] = field(default_factory=list)


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    t = Tracker()
    yield t
    for conn in t.conns:
        conn.abort()
    for server in t.servers:
        server.shutdown()
    for sock in t.socks:
        sock.close()


@dataclass
class Outcome:
    """What a TlsClient saw."""

    conn: TlsConnection | None = None
    error: tuple[str, int, str] | None = None
    data: bytearray = field(default_factory=bytearray)
    events: list[str] = field(default_factory=list)


def start_client(
    loop: Loop,
    tracker: Tracker,
    port: int,
    *,
    host: str = "localhost",
    on_connect: Callable[[TlsConnection], Any] | None = None,
    stop_on_error: bool = True,
    **kwargs: Any,
) -> Outcome:
    outcome = Outcome()
    client = TlsClient(loop, **kwargs)

    def connected(conn: TlsConnection) -> None:
        tracker.conns.append(conn)
        outcome.conn = conn
        conn.on("data", outcome.data.extend)
        conn.on("close", lambda: outcome.events.append("close"))
        conn.on("disconnect", lambda: outcome.events.append("disconnect"))
        if on_connect is not None:
            on_connect(conn)

    def failed(kind: str, code: int, message: str) -> None:
        outcome.error = (kind, code, message)
        if stop_on_error:
            loop.stop()

    client.on("connect", connected)
    client.on("connect_error", failed)
    client.connect(host, port, connect_timeout=5)
    return outcome


def start_server(
    loop: Loop,
    tracker: Tracker,
    context: ssl.SSLContext,
    on_connect: Callable[[TlsConnection], Any] | None = None,
    **kwargs: Any,
) -> tuple[TlsServer, list[TlsConnection]]:
    server = TlsServer("127.0.0.1", 0, context, loop=loop, **kwargs)
    tracker.servers.append(server)
    accepted: list[TlsConnection] = []

    def connected(conn: TcpConnection) -> None:
        assert isinstance(conn, TlsConnection)
        tracker.conns.append(conn)
        accepted.append(conn)
        if on_connect is not None:
            on_connect(conn)

    server.on("connect", connected)
    return server, accepted


def echo(conn: TlsConnection) -> None:
    conn.on("data", conn.write)
    conn.on("close", conn.close)


def stop_when(loop: Loop, predicate: Callable[[], bool], period: float = 0.005) -> None:
    """Stop ``loop`` once ``predicate()`` holds (run_for bounds the wait)."""

    def check() -> None:
        if predicate():
            loop.stop()
        else:
            loop.schedule(period, check)

    loop.schedule(0, check)


# ------------------------------------------------------------------ basics


def test_round_trip_with_verification(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server, accepted = start_server(loop, tracker, server_context(pki.server), echo)
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        on_connect=lambda conn: conn.write(b"hello over tls"),
    )
    stop_when(loop, lambda: bytes(outcome.data) == b"hello over tls")
    run_for(loop, 5)
    assert outcome.error is None
    conn = outcome.conn
    assert isinstance(conn, TlsConnection)
    assert conn.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    assert conn.peer_certificate is not None
    assert ("DNS", "localhost") in conn.peer_certificate["subjectAltName"]
    assert len(accepted) == 1
    assert accepted[0].peer_certificate is None  # no client certificate asked for
    assert thor.TlsClient is TlsClient
    assert thor.TlsServer is TlsServer


def test_ipv6_round_trip(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server = TlsServer("::1", 0, server_context(pki.server), loop=loop)
    tracker.servers.append(server)
    server.on("connect", lambda conn: (tracker.conns.append(conn), echo(conn)))
    outcome = start_client(
        loop,
        tracker,
        server.port,
        host="::1",
        context=client_context(cafile=pki.cafile),
        on_connect=lambda conn: conn.write(b"v6"),
    )
    stop_when(loop, lambda: bytes(outcome.data) == b"v6")
    run_for(loop, 5)
    assert outcome.error is None


def test_default_client_verifies_against_system_cas(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    # The test CA is not a system CA, so the default (verifying) client refuses it.
    server, _ = start_server(loop, tracker, server_context(pki.server))
    outcome = start_client(loop, tracker, server.port)
    run_for(loop, 5)
    assert outcome.error is not None
    kind, code, message = outcome.error
    assert (kind, code) == ("ssl", 0)
    assert "certificate verify failed" in message
    assert outcome.conn is None


def test_untrusted_certificate_is_refused(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server, accepted = start_server(loop, tracker, server_context(pki.untrusted))
    outcome = start_client(loop, tracker, server.port, context=client_context(cafile=pki.cafile))
    run_for(loop, 5)
    assert outcome.error is not None
    assert outcome.error[0] == "ssl"
    assert "unable to get local issuer certificate" in outcome.error[2]
    assert accepted == []


@pytest.mark.parametrize("how", ["certificate for another name", "server_hostname given"])
def test_wrong_hostname_is_refused(loop: Loop, tracker: Tracker, pki: Pki, how: str) -> None:
    if how == "certificate for another name":
        server, _ = start_server(loop, tracker, server_context(pki.wrong_name))
        kwargs: dict[str, Any] = {}
    else:
        server, _ = start_server(loop, tracker, server_context(pki.server))
        kwargs = {"server_hostname": "other.example"}
    outcome = start_client(
        loop, tracker, server.port, context=client_context(cafile=pki.cafile), **kwargs
    )
    run_for(loop, 5)
    assert outcome.error is not None
    assert outcome.error[0] == "ssl"
    assert "Hostname mismatch" in outcome.error[2]


def test_ip_address_is_checked_against_ip_san(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server, _ = start_server(loop, tracker, server_context(pki.wrong_name))
    outcome = start_client(
        loop, tracker, server.port, host="127.0.0.1", context=client_context(cafile=pki.cafile)
    )
    run_for(loop, 5)
    assert outcome.error is not None
    assert "IP address mismatch" in outcome.error[2]


def test_verify_false_accepts_anything(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server, _ = start_server(loop, tracker, server_context(pki.untrusted), echo)
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(verify=False),
        on_connect=lambda conn: conn.write(b"insecure"),
    )
    stop_when(loop, lambda: bytes(outcome.data) == b"insecure")
    run_for(loop, 5)
    assert outcome.error is None
    assert outcome.conn is not None
    assert outcome.conn.peer_certificate is None  # not verified, so not decoded


# ------------------------------------------------------------- SNI, ALPN


@pytest.mark.parametrize(
    ("host", "server_hostname", "expected"),
    [
        ("localhost", None, "localhost"),
        ("127.0.0.1", None, None),  # RFC 6066 §3: no IP literals in SNI
        ("127.0.0.1", "localhost", "localhost"),
    ],
)
def test_sni_reaches_the_server(
    loop: Loop,
    tracker: Tracker,
    pki: Pki,
    host: str,
    server_hostname: str | None,
    expected: str | None,
) -> None:
    seen: list[str | None] = []
    context = server_context(pki.server)

    def sni(_sock: Any, name: str | None, _context: ssl.SSLContext) -> None:
        seen.append(name)

    context.sni_callback = sni
    server, accepted = start_server(loop, tracker, context)
    start_client(
        loop,
        tracker,
        server.port,
        host=host,
        server_hostname=server_hostname,
        context=client_context(cafile=pki.cafile),
    )
    stop_when(loop, lambda: bool(accepted))
    run_for(loop, 5)
    assert seen == [expected]


@pytest.mark.parametrize(
    ("offered", "expected"),
    [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1"), (["spdy/1"], None)],
)
def test_alpn(
    loop: Loop, tracker: Tracker, pki: Pki, offered: list[str], expected: str | None
) -> None:
    server, accepted = start_server(
        loop, tracker, server_context(pki.server, alpn=["h2", "http/1.1"])
    )
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        alpn_protocols=offered,
    )
    stop_when(loop, lambda: bool(accepted) and outcome.conn is not None)
    run_for(loop, 5)
    assert outcome.conn is not None
    assert outcome.conn.alpn_protocol == expected
    assert accepted[0].alpn_protocol == expected


# ----------------------------------------------------- client certificates


def test_client_certificate_accepted(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    context = server_context(pki.server, cafile=pki.cafile, require_client_cert=True)
    server, accepted = start_server(loop, tracker, context, echo)
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile, certfile=pki.client),
        on_connect=lambda conn: conn.write(b"mutual"),
    )
    stop_when(loop, lambda: bytes(outcome.data) == b"mutual")
    run_for(loop, 5)
    peer = accepted[0].peer_certificate
    assert peer is not None
    assert ("email", "client@example.test") in peer["subjectAltName"]


@pytest.mark.parametrize("client_cert", ["none", "untrusted"])
def test_client_certificate_refused(
    loop: Loop, tracker: Tracker, pki: Pki, client_cert: str
) -> None:
    context = server_context(pki.server, cafile=pki.cafile, require_client_cert=True)
    server, accepted = start_server(loop, tracker, context)
    certfile = pki.untrusted_client if client_cert == "untrusted" else None
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile, certfile=certfile),
        stop_on_error=False,
    )
    # TLS 1.3: the client's handshake ends before the server checks its
    # certificate, so the refusal is a lost connection (TLS 1.2: connect_error).
    stop_when(loop, lambda: outcome.error is not None or "disconnect" in outcome.events)
    run_for(loop, 5)
    if outcome.error is None:
        assert outcome.events == ["close", "disconnect"]
        assert outcome.data == b""
    else:
        assert outcome.error[0] == "ssl"
    assert accepted == []


# ----------------------------------------------------------------- timeouts


def test_client_handshake_timeout(loop: Loop, tracker: Tracker) -> None:
    silent = TcpServer("127.0.0.1", 0, loop=loop)  # accepts, never answers
    tracker.servers.append(silent)
    silent.on("connect", tracker.conns.append)
    started = loop.time()
    outcome = start_client(loop, tracker, silent.port, handshake_timeout=0.3)
    run_for(loop, 5)
    assert outcome.error == ("ssl", 0, "TLS handshake timed out")
    assert 0.25 <= loop.time() - started < 3


def test_server_handshake_timeout_and_garbage(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server, accepted = start_server(
        loop, tracker, server_context(pki.server), echo, handshake_timeout=0.5
    )
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    garbage = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    tracker.socks += [silent, garbage]
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    ends: dict[str, float] = {}

    def watch(name: str, sock: socket.socket) -> None:
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass  # a reset or an alert then EOF: closed either way
        ends[name] = loop.time()
        loop.run_in_loop(lambda: None)

    threads = [
        threading.Thread(target=watch, args=("silent", silent)),
        threading.Thread(target=watch, args=("garbage", garbage)),
    ]
    for thread in threads:
        thread.start()
    started = loop.time()
    stop_when(loop, lambda: len(ends) == 2)
    run_for(loop, 5)
    for thread in threads:
        thread.join(5)
    assert ends["garbage"] - started < 0.45  # refused at once, not by the timeout
    assert 0.45 <= ends["silent"] - started < 3  # closed by the timeout
    assert accepted == []
    # The server still works.
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        on_connect=lambda conn: conn.write(b"still up"),
    )
    stop_when(loop, lambda: bytes(outcome.data) == b"still up")
    run_for(loop, 5)


# ------------------------------------------------------------ bulk and flow


def test_large_transfer_with_write_flow_control(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    total, chunk = 32 * 1024 * 1024, 64 * 1024
    block = bytes(range(256)) * (chunk // 256)
    sent_hash = hashlib.sha256()
    state = {"sent": 0, "paused": False, "pauses": 0, "max_buffered": 0}
    received_hash = hashlib.sha256()
    received = [0]

    def pump(conn: TlsConnection) -> None:
        while not state["paused"] and state["sent"] < total:
            data = state["sent"].to_bytes(8, "big") + block[8:]  # each chunk differs
            sent_hash.update(data)
            conn.write(data)
            state["sent"] += len(data)
            state["max_buffered"] = max(state["max_buffered"], conn.write_buffer_size)
        if state["sent"] >= total:
            conn.close()

    def on_server_conn(conn: TlsConnection) -> None:
        def on_pause(paused: bool) -> None:
            state["paused"] = paused
            if paused:
                state["pauses"] += 1
                client_conn = outcome.conn
                assert client_conn is not None
                client_conn.pause(False)  # the sender has felt the back-pressure
            else:
                pump(conn)

        conn.on("pause", on_pause)
        pump(conn)

    server, _ = start_server(loop, tracker, server_context(pki.server), on_server_conn)

    def on_client_conn(conn: TlsConnection) -> None:
        conn.remove_listener("data", outcome.data.extend)  # counted and hashed instead
        conn.pause(True)  # read nothing until the server is paused

        def on_data(data: bytes) -> None:
            received_hash.update(data)
            received[0] += len(data)

        conn.on("data", on_data)
        conn.on("close", loop.stop)

    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        on_connect=on_client_conn,
    )
    run_for(loop, 60)
    assert received[0] == total
    assert received_hash.digest() == sent_hash.digest()
    assert state["pauses"] >= 1
    assert state["max_buffered"] <= TlsConnection.write_high_water + chunk


# ------------------------------------------------------------------ closing


def test_half_close_then_response(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    server_log: list[Any] = []

    def on_server_conn(conn: TlsConnection) -> None:
        conn.on("data", server_log.append)

        def on_close() -> None:
            server_log.append("close")
            conn.write(b"response after your EOF")
            conn.close()

        conn.on("close", on_close)

    server, _ = start_server(loop, tracker, server_context(pki.server), on_server_conn)

    def on_client_conn(conn: TlsConnection) -> None:
        conn.write(b"request")
        conn.shutdown_write()
        conn.on("disconnect", loop.stop)

    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        on_connect=on_client_conn,
    )
    run_for(loop, 5)
    assert b"".join(x for x in server_log if isinstance(x, bytes)) == b"request"
    assert server_log[-1] == "close"
    assert bytes(outcome.data) == b"response after your EOF"
    assert outcome.events == ["close", "disconnect"]


def test_close_sends_close_notify(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    """A blocking stdlib client that refuses ragged EOFs sees a clean close."""

    def on_server_conn(conn: TlsConnection) -> None:
        conn.write(b"bye")
        conn.close()

    server, _ = start_server(loop, tracker, server_context(pki.server), on_server_conn)
    result: list[object] = []

    def client() -> None:
        context = client_context(cafile=pki.cafile)
        try:
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            tls = context.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
            with tls:
                data = b""
                for _ in range(100):
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                result.append(data)
        except Exception as error:
            result.append(error)
        loop.run_in_loop(loop.stop)

    thread = threading.Thread(target=client)
    thread.start()
    run_for(loop, 5)
    thread.join(5)
    assert result == [b"bye"]


def test_ssl_error_during_data_is_a_lost_connection(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    events: list[Any] = []

    def on_server_conn(conn: TlsConnection) -> None:
        conn.on("data", events.append)
        conn.on("close", lambda: events.append("close"))
        conn.on("disconnect", lambda: (events.append("disconnect"), loop.stop()))

    server, _ = start_server(loop, tracker, server_context(pki.server), on_server_conn)
    context = client_context(cafile=pki.cafile)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    tracker.socks.append(raw)
    done = threading.Event()

    def client() -> None:
        tls = context.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
        tracker.socks.append(tls)
        tls.do_handshake()
        tls.sendall(b"ok")
        # A record with a bad MAC: application data type, TLS 1.2 version, junk.
        socket.socket.sendall(tls, b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    run_for(loop, 5)
    thread.join(5)
    assert done.is_set()
    assert events == [b"ok", "close", "disconnect"]


def test_graceful_shutdown_aborts_pending_handshakes(
    loop: Loop, tracker: Tracker, pki: Pki
) -> None:
    server, accepted = start_server(loop, tracker, server_context(pki.server))
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    tracker.socks.append(silent)
    stopped: list[bool] = []
    server.on("stop", lambda: stopped.append(True))
    loop.schedule(0.1, server.graceful_shutdown)
    stop_when(loop, lambda: bool(stopped))
    run_for(loop, 5)
    silent.settimeout(2)
    try:
        assert silent.recv(10) == b""
    except ConnectionResetError:
        pass
    assert accepted == []


# ------------------------------------------- bytes held inside OpenSSL


@pytest.mark.parametrize("pause_between", [False, True])
def test_decrypted_bytes_held_by_openssl_are_delivered(
    loop: Loop, tracker: Tracker, pki: Pki, pause_between: bool
) -> None:
    """One 12 000-byte record read 1 000 bytes at a time: after the first
    read the socket is empty, the rest waits in OpenSSL (``pending()``) and no
    readable event will come for it."""
    payload = bytes(range(250)) * 48
    server, _ = start_server(
        loop, tracker, server_context(pki.server), lambda conn: conn.write(payload)
    )

    def on_client_conn(conn: TlsConnection) -> None:
        conn.read_bufsize = 1000

        def on_data(data: bytes) -> None:
            assert len(data) <= 1000
            if pause_between:
                conn.pause(True)
                loop.schedule(0.01, conn.pause, False)

        conn.on("data", on_data)

    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        on_connect=on_client_conn,
    )
    stop_when(loop, lambda: len(outcome.data) == len(payload))
    run_for(loop, 5)
    assert bytes(outcome.data) == payload


def test_half_close_waits_for_unread_input(loop: Loop, tracker: Tracker, pki: Pki) -> None:
    """close_notify goes out only once the input waiting for us is read:
    sending it would consume that input (see thor.tls, "Closing")."""
    server_events: list[str] = []

    def on_server_conn(conn: TlsConnection) -> None:
        conn.write(b"early ")  # on loopback, in the client's socket once write() returns

        def on_close() -> None:
            server_events.append("close")
            conn.write(b"and late")
            conn.close()

        conn.on("close", on_close)

    server, accepted = start_server(loop, tracker, server_context(pki.server), on_server_conn)
    outcome = start_client(
        loop,
        tracker,
        server.port,
        context=client_context(cafile=pki.cafile),
        on_connect=lambda conn: conn.pause(True),
    )
    stop_when(loop, lambda: bool(accepted) and outcome.conn is not None)
    run_for(loop, 5)
    conn = outcome.conn
    assert conn is not None
    conn.shutdown_write()  # "early " is waiting unread: close_notify must wait
    loop.schedule(0.05, conn.pause, False)
    stop_when(loop, lambda: "disconnect" in outcome.events)
    run_for(loop, 5)
    assert server_events == ["close"]
    assert bytes(outcome.data) == b"early and late"
    assert outcome.events == ["close", "disconnect"]
