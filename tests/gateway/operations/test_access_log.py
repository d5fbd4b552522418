"""The access log: gunicorn atoms, escaping (Appendix B50), JSON lines."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gateway.gateway_helpers import poll, raw_exchange, statuses
from thor_gateway.operations.access_log import AccessLog, AccessRecord, escape_bytes

APPS = "tests.gateway.gateway_apps"


def record(**changes: Any) -> AccessRecord:
    base = AccessRecord(
        remote="192.0.2.1",
        method=b"GET",
        target=b"/p?q=1",
        version=b"1.1",
        status=200,
        body_bytes=13,
        duration=0.0123,
        when=0.0,
        request_headers=[(b"User-Agent", b"ua"), (b"Referer", b"http://r/"), (b"X-Id", b"7")],
        response_headers=[(b"Content-Type", b"text/plain")],
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_gunicorn_default_format() -> None:
    log = AccessLog("-", '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"')
    assert log.line(record()) == (
        '192.0.2.1 - - [01/Jan/1970:00:00:00 +0000] "GET /p?q=1 HTTP/1.1" 200 13 "http://r/" "ua"'
    )


def test_every_atom() -> None:
    fmt = (
        "%(m)s %(U)s %(q)s %(H)s %(B)s %(T)s %(D)s %(M)s %(L)s"
        " %({x-id}i)s %({content-type}o)s %({HOME}e)s %(zz)s"
    )
    log = AccessLog("-", fmt)
    words = log.line(record()).split(" ")
    assert words[:7] == ["GET", "/p", "q=1", "HTTP/1.1", "13", "0", "12300"]
    assert words[7:10] == ["12", "0.012300", "7"]
    assert words[10] == "text/plain"
    assert words[12] == "-"  # unknown atoms print '-'
    assert AccessLog("-", "%(b)s").line(record(body_bytes=0)) == "-"


def test_cache_status_is_thors_member() -> None:
    log = AccessLog("-", "%(C)s")
    assert log.line(record()) == "-"
    upstream = (b"Cache-Status", b"edge; hit, thorn; fwd=miss")
    ours = (b"cache-status", b"thor; fwd=miss; fwd-status=200; stored")
    assert log.line(record(response_headers=[upstream])) == "-"  # not ours: thorn is not thor
    assert log.line(record(response_headers=[upstream, ours])) == (
        "thor; fwd=miss; fwd-status=200; stored"
    )
    escaped = log.line(record(response_headers=[(b"Cache-Status", b'thor; hit; x="\x1b"')]))
    assert escaped == r"thor; hit; x=\"\x1b\""
    assert json.loads(AccessLog("-", "", json_lines=True).line(record()))["cache_status"] == "-"


def test_basic_auth_user() -> None:
    log = AccessLog("-", "%(u)s")
    headers = [(b"Authorization", b"Basic YWxpY2U6c2VjcmV0")]  # alice:secret
    assert log.line(record(request_headers=headers)) == "alice"


def test_escaping() -> None:
    assert (
        escape_bytes(b'/\x1b[31mred\r\nX\x00\x7f\xff"\\')
        == '/\\x1b[31mred\\x0d\\x0aX\\x00\\x7f\\xff\\"\\\\'
    )


def test_bad_format_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="incomplete format"):
        AccessLog(str(tmp_path / "a.log"), "%(h)s %(")
    assert not (tmp_path / "a.log").exists()


def test_file_lines(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "a.log"), "%(s)s %(m)s")
    log.write(record())
    log.write(record(status=404))
    log.close()
    assert (tmp_path / "a.log").read_text() == "200 GET\n404 GET\n"


def test_e2e_file_escaping_and_headers(start_gateway: Any, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    gateway = start_gateway(
        f"{APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--access-logfile",
        str(path),
        "--access-logformat",
        '%(h)s "%(r)s" %(s)s %(b)s "%({x-note}i)s" %(D)s',
    )
    answer = raw_exchange(
        gateway.port,
        b"GET /%1b[31mred HTTP/1.1\r\nHost: a\r\n"
        b'X-Note: caf\xc3\xa9 "q"\r\nConnection: close\r\n\r\n',
    )
    assert statuses(answer) == [200]
    requests.get(gateway.url + "/second", timeout=10)
    poll(lambda: path.exists() and path.read_text().count("\n") >= 2, 10, "two log lines")
    first, second = path.read_text().splitlines()[:2]
    assert first.startswith('127.0.0.1 "GET /%1b[31mred HTTP/1.1" 200 ')
    assert '"caf\\xc3\\xa9 \\"q\\""' in first
    assert "\x1b" not in path.read_text()
    assert second.startswith('127.0.0.1 "GET /second HTTP/1.1" 200 ')
    assert int(second.rsplit(" ", 1)[1]) > 0  # microseconds


def test_e2e_json_lines_on_stdout(start_gateway: Any) -> None:
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "--access-logfile", "-", "--log-format", "json"
    )
    requests.get(gateway.url + "/j?k=v", headers={"User-Agent": "t\xe9u"}, timeout=10)
    poll(lambda: gateway.stdout, 10, "an access log line")
    entry = json.loads(gateway.stdout[0])
    assert (entry["method"], entry["path"], entry["query"], entry["status"]) == (
        "GET",
        "/j",
        "k=v",
        200,
    )
    assert entry["user_agent"] == "t\\xe9u"  # obs-text, escaped
    assert entry["duration_ms"] >= 0
    error_log = [json.loads(line) for line in gateway.lines if line.startswith("{")]
    assert any(e["message"].startswith("Listening at") for e in error_log)
    assert time.time() > 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigusr1_reopens_the_file(start_gateway: Any, tmp_path: Path, workers: str) -> None:
    import signal

    path = tmp_path / "access.log"
    gateway = start_gateway(
        f"{APPS}:info", "-b", "127.0.0.1:0", "-w", workers, "--access-logfile", str(path)
    )
    if workers == "2":
        poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    requests.get(gateway.url + "/before", timeout=10)
    poll(lambda: path.exists() and "/before" in path.read_text(), 10, "the first line")
    path.rename(tmp_path / "access.log.1")  # what logrotate does
    gateway.signal(signal.SIGUSR1)
    poll(lambda: gateway.count_lines("access log reopened") >= int(workers), 10, "reopening")
    for _ in range(4):
        with requests.Session() as session:
            session.get(gateway.url + "/after", timeout=10)
    poll(lambda: path.exists() and path.read_text().count("/after") == 4, 10, "new lines")
    assert "/after" not in (tmp_path / "access.log.1").read_text()
    assert gateway.stop() == 0


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_escaped_is_printable_ascii_and_reversible(data: bytes) -> None:
    text = escape_bytes(data)
    assert all(" " <= c <= "~" for c in text)
    assert '"' not in text.replace('\\"', "")  # every quote is escaped
    assert text.encode("ascii").decode("unicode_escape").encode("latin-1") == data


def test_a_response_the_client_received_is_never_logged_aborted(start_gateway: Any) -> None:
    """Issue 14, bug 1: a body whose close() is slow, read whole by clients that then close.

    The client has every byte that Content-Length announced before the app's close() returns;
    its leaving then must not turn the exchange into an aborted one (status 0).
    """
    gateway = start_gateway(
        f"{APPS}:slow_close",
        "-b",
        "127.0.0.1:0",
        "--access-logfile",
        "-",
        "--metrics-bind",
        "127.0.0.1:0",
    )
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = b""
            while not response.endswith(b"\r\n\r\nhello"):  # then close, as a client does
                chunk = sock.recv(4096)
                assert chunk, f"the response was cut: {response!r}"
                response += chunk
    poll(lambda: len(gateway.stdout) >= 30, 10, "30 access log lines")
    statuses_logged = [line.split('" ')[1].split()[0] for line in gateway.stdout]
    assert statuses_logged == ["200"] * 30
    metrics = requests.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10).text
    assert "thor_requests_aborted_total 0" in metrics
