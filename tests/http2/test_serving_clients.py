"""HTTP/2 serving judged by real clients (curl, nghttp) and attacked over a real socket:
each flood ends in GOAWAY with the RFC's code and one log line."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.http.server_helpers import ServerThread, read_all
from tests.http2.peer import REQUEST, raw
from thor.http2.protocol.connection import PREFACE
from thor.http2.protocol.frames import (
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    RST_STREAM,
    SETTINGS,
    FrameReader,
    settings_frame,
)
from thor.http2.protocol.hpack import Encoder
from thor.tls import server_context

CURL_HTTP2 = (
    shutil.which("curl") is not None
    and "HTTP2"
    in subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout
)


def version_app(ex: Any) -> None:
    body: list[bytes] = []
    ex.on("request_body", body.append)
    ex.on(
        "request_done",
        lambda t: ex.respond(
            200, "OK", [], b"HTTP/%s %s %d" % (ex.req_version, ex.uri, len(b"".join(body)))
        ),
    )


@pytest.mark.skipif(not CURL_HTTP2, reason="curl without HTTP2")
def test_curl_with_prior_knowledge() -> None:
    # One URL per run: curl 7.88.1 fails reusing a prior-knowledge connection (curl #10634).
    with ServerThread(version_app) as srv:
        out = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", srv.url + "/a", "-d", "xyz"],
            capture_output=True,
            timeout=20,
            check=True,
        ).stdout
    assert out == b"HTTP/2 /a 3"


@pytest.mark.skipif(not CURL_HTTP2, reason="curl without HTTP2")
def test_curl_over_tls_negotiates_h2(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem, cafile = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(cafile))
    (tmp_path / "body").write_bytes(b"x" * 200_000)
    with ServerThread(version_app, tls_context=server_context(str(pem))) as srv:
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "--http2",
                "--cacert",
                str(cafile),
                "--resolve",
                f"localhost:{srv.port}:127.0.0.1",
                "--data-binary",
                f"@{tmp_path / 'body'}",
                "-w",
                " %{http_version}",
                f"https://localhost:{srv.port}/tls",
            ],
            capture_output=True,
            timeout=20,
            check=True,
        )
    assert result.stdout == b"HTTP/2 /tls 200000 2"


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp (nghttp2-client) missing")
def test_nghttp_multiplexes_over_h2c() -> None:
    with ServerThread(version_app) as srv:
        out = subprocess.run(
            ["nghttp", "-n", "-s", "-m", "10", srv.url + "/n"],
            capture_output=True,
            timeout=20,
            text=True,
            check=True,
        ).stdout
    assert out.count("/n") == 10  # the statistics name each of the ten requests


# ------------------------------------------------------------------ defences over a socket


def attack(frames: bytes, caplog: pytest.LogCaptureFixture, **settings: Any) -> list[Any]:
    """Send the preface, SETTINGS and ``frames``; the GOAWAYs the server sent before
    closing, as ``(error_code, last_stream_id)``."""
    with (
        caplog.at_level(logging.INFO, logger="thor.http2.server"),
        ServerThread(version_app, **settings) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock,
    ):
        try:
            sock.sendall(PREFACE + settings_frame({}) + frames)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before taking it all
        received = read_all(sock)
    reader = FrameReader(1 << 24)
    reader.feed(received)
    goaways = []
    while (frame := reader.next_frame()) is not None:
        if frame.type == GOAWAY:
            code = int.from_bytes(frame.payload[4:8], "big")
            goaways.append(Goaway(code, int.from_bytes(frame.payload[:4], "big")))
    return goaways


@dataclasses.dataclass
class Goaway:
    error_code: int
    last_stream_id: int


def test_rapid_reset_ends_in_enhance_your_calm(caplog: pytest.LogCaptureFixture) -> None:
    encoder = Encoder()
    frames = b"".join(
        raw(HEADERS, END_HEADERS | END_STREAM, sid, encoder.encode(REQUEST))
        + raw(RST_STREAM, 0, sid, (8).to_bytes(4, "big"))
        for sid in range(1, 2 * 150, 2)
    )
    (goaway,) = attack(frames, caplog)
    assert goaway.error_code == 11  # ENHANCE_YOUR_CALM
    assert "ENHANCE_YOUR_CALM" in caplog.text
    assert "Traceback" not in caplog.text


def test_continuation_flood_ends_in_enhance_your_calm(caplog: pytest.LogCaptureFixture) -> None:
    block = Encoder().encode(REQUEST)
    frames = raw(HEADERS, 0, 1, block[:2]) + b"".join(
        raw(CONTINUATION, 0, 1, b"\x00" * 16) for _ in range(100)
    )
    (goaway,) = attack(frames, caplog)
    assert goaway.error_code == 11
    assert "CONTINUATION flood" in caplog.text


def test_settings_flood_ends_in_enhance_your_calm(caplog: pytest.LogCaptureFixture) -> None:
    frames = b"".join(raw(SETTINGS, 0, 0, b"") for _ in range(200))
    (goaway,) = attack(frames, caplog)
    assert goaway.error_code == 11
    assert caplog.text.count("HTTP/2 connection error") == 1


def test_a_bad_frame_is_a_protocol_error_logged_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (goaway,) = attack(raw(HEADERS, END_HEADERS, 2, b""), caplog)  # an even stream id
    assert goaway.error_code == 1  # PROTOCOL_ERROR
    (line,) = [r for r in caplog.records if "connection error" in r.getMessage()]
    assert "\n" not in line.getMessage()
    assert line.exc_info is None


def test_no_preface_in_time_closes(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="thor.http2.server"),
        ServerThread(version_app, header_timeout=0.2) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock,
    ):
        sock.sendall(PREFACE[:10])
        read_all(sock)  # returns once the server closes
    assert "no preface in time" in caplog.text
