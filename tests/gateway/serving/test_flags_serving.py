"""Response fields, proxy headers, logs, client certificates and --reload-dir over real sockets."""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests

from tests.gateway.gateway_helpers import LISTENING, ROOT, Gateway, poll, run_cli

trustme = pytest.importorskip("trustme")

APPS = "tests.gateway.serving.flags_apps"


def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Gateway:
    gateway = Gateway(*args, env=env) if cwd is None else Gateway(*args, env=env, cwd=cwd)
    try:
        gateway.wait_ready()
    except BaseException:
        gateway.close()
        raise
    return gateway


def head_of(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.partition(b"\r\n\r\n")[0].lower()


def test_server_and_date_fields_by_default_and_without() -> None:
    gateway = start(f"{APPS}:process", "-b", "127.0.0.1:0")
    try:
        head = head_of(gateway.port)
        assert b"\r\nserver: thor" in head
        assert b"\r\ndate: " in head
    finally:
        gateway.close()
    gateway = start(
        f"{APPS}:process", "-b", "127.0.0.1:0", "--no-server-header", "--no-date-header"
    )
    try:
        head = head_of(gateway.port)
        assert b"\r\nserver:" not in head
        assert b"\r\ndate:" not in head
        assert head.startswith(b"http/1.1 200")
    finally:
        gateway.close()


@pytest.mark.parametrize(
    ("flag", "client"), [("--proxy-headers", "1.2.3.4"), ("--no-proxy-headers", "127.0.0.1")]
)
def test_proxy_headers_switch(flag: str, client: str) -> None:
    # The peer (127.0.0.1) is in the default --forwarded-allow-ips.
    gateway = start(f"{APPS}:process", "-b", "127.0.0.1:0", flag)
    try:
        headers = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
        seen = requests.get(gateway.url + "/", headers=headers, timeout=10).json()
        assert seen["client"] == client
        assert seen["scheme"] == ("https" if client == "1.2.3.4" else "http")
    finally:
        gateway.close()


def test_no_access_log_wins_over_the_file(tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    args = ["-b", "127.0.0.1:0", "--access-logfile", str(log_file), "--no-access-log"]
    gateway = start(f"{APPS}:process", *args)
    try:
        assert requests.get(gateway.url + "/quiet", timeout=10).status_code == 200
        assert gateway.stop() == 0
        assert not log_file.exists()
    finally:
        gateway.close()


def test_access_log_alone_goes_to_standard_output() -> None:
    gateway = start(f"{APPS}:process", "-b", "127.0.0.1:0", "--access-log")
    try:
        assert requests.get(gateway.url + "/loud", timeout=10).status_code == 200
        poll(lambda: any('"GET /loud HTTP/1.1" 200' in line for line in gateway.stdout), 10)
    finally:
        gateway.close()


def wait_for_file_line(path: Path, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                if text in line:
                    return line
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}")


def test_error_logfile(tmp_path: Path) -> None:
    log_file = tmp_path / "error.log"
    gateway = Gateway(f"{APPS}:process", "-b", "127.0.0.1:0", "--error-logfile", str(log_file))
    try:
        line = wait_for_file_line(log_file, "Listening at")
        match = LISTENING.search(line)
        assert match is not None
        assert requests.get(f"http://127.0.0.1:{match[3]}/", timeout=10).status_code == 200
        assert gateway.stop() == 0
        assert "stopped" in log_file.read_text()
        assert "Listening at" not in gateway.log  # not on standard error as well
    finally:
        gateway.close()


@pytest.mark.parametrize("form", ["json", "toml", "ini"])
def test_log_config(tmp_path: Path, form: str) -> None:
    log_file = tmp_path / "custom.log"
    if form == "ini":
        text = (
            "[loggers]\nkeys=root,gateway\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
            "[logger_root]\nhandlers=\n[logger_gateway]\nqualname=thor_gateway\nlevel=INFO\n"
            "handlers=file\npropagate=0\n"
            f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(log_file)!r},)\n"
            "[formatter_plain]\nformat=CUSTOM %(levelname)s %(message)s\n"
        )
    else:
        table = {
            "version": 1,
            "formatters": {"plain": {"format": "CUSTOM %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(log_file),
                    "formatter": "plain",
                }
            },
            "loggers": {
                "thor_gateway": {"handlers": ["file"], "level": "INFO", "propagate": False}
            },
        }
        if form == "json":
            text = json.dumps(table)
        else:
            text = (
                "version = 1\n[formatters.plain]\nformat = 'CUSTOM %(levelname)s %(message)s'\n"
                "[handlers.file]\nclass = 'logging.FileHandler'\n"
                f"filename = {json.dumps(str(log_file))}\n"
                "formatter = 'plain'\n[loggers.thor_gateway]\nhandlers = ['file']\nlevel = 'INFO'\n"
                "propagate = false\n"
            )
    config = tmp_path / f"logging.{form}"
    config.write_text(text)
    gateway = Gateway(f"{APPS}:process", "-b", "127.0.0.1:0", "--log-config", str(config))
    try:
        line = wait_for_file_line(log_file, "Listening at")
        assert line.startswith("CUSTOM INFO Listening at http://127.0.0.1:")
    finally:
        gateway.close()


def test_bad_log_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "logging.json"
    config.write_text('{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}')
    result = run_cli(f"{APPS}:process", "-b", "127.0.0.1:0", "--log-config", str(config))
    assert result.returncode == 2
    assert "--log-config: " in result.stderr


# ----------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client@example.org")
    paths = {
        "ca": base / "ca.pem",
        "cert": base / "cert.pem",
        "key": base / "key.pem",
        "client": base / "client.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    (base / "encrypted.pem").write_bytes(encrypted)
    return {name: str(path) for name, path in paths.items()} | {
        "encrypted": str(base / "encrypted.pem")
    }


def tls_get(port: int, cafile: str, client_cert: str | None) -> bytes:
    context = ssl.create_default_context(cafile=cafile)
    if client_cert is not None:
        context.load_cert_chain(client_cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("reqs", ["required", "2"])
def test_client_certificates_required(pki: dict[str, str], reqs: str) -> None:
    gateway = start(
        f"{APPS}:process",
        "-b",
        "127.0.0.1:0",
        "--certfile",
        pki["cert"],
        "--keyfile",
        pki["key"],
        "--ssl-ca-certs",
        pki["ca"],
        "--ssl-cert-reqs",
        reqs,
    )
    try:
        assert tls_get(gateway.port, pki["ca"], pki["client"]).startswith(b"HTTP/1.1 200")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            # TLS 1.3: the refusal comes with the first read after the handshake.
            tls_get(gateway.port, pki["ca"], None)
    finally:
        gateway.close()


def test_client_certificates_optional(pki: dict[str, str]) -> None:
    args = ["--certfile", pki["cert"], "--keyfile", pki["key"], "--ssl-ca-certs", pki["ca"]]
    gateway = start(f"{APPS}:process", "-b", "127.0.0.1:0", *args)
    try:
        assert tls_get(gateway.port, pki["ca"], pki["client"]).startswith(b"HTTP/1.1 200")
        assert tls_get(gateway.port, pki["ca"], None).startswith(b"HTTP/1.1 200")
    finally:
        gateway.close()


def test_encrypted_keyfile_with_its_password(pki: dict[str, str]) -> None:
    args = ["--certfile", pki["cert"], "--keyfile", pki["encrypted"]]
    gateway = start(
        f"{APPS}:process", "-b", "127.0.0.1:0", *args, "--ssl-keyfile-password", "s3cret"
    )
    try:
        assert tls_get(gateway.port, pki["ca"], None).startswith(b"HTTP/1.1 200")
    finally:
        gateway.close()
    wrong = run_cli(f"{APPS}:process", *args, "--ssl-keyfile-password", "wrong", "--check-config")
    assert wrong.returncode == 2
    assert "certfile: cannot load the certificate or key" in wrong.stderr


def test_required_client_certificates_need_a_ca(pki: dict[str, str]) -> None:
    args = ["--certfile", pki["cert"], "--keyfile", pki["key"], "--ssl-cert-reqs", "required"]
    result = run_cli(f"{APPS}:process", *args, "--check-config")
    assert result.returncode == 2
    assert "ssl_cert_reqs: requiring client certificates needs --ssl-ca-certs" in result.stderr


# -------------------------------------------------------------------- reload


RELOAD_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def test_reload_dir_and_include(tmp_path: Path) -> None:
    (tmp_path / "reloaddirapp.py").write_text(RELOAD_APP)
    templates = tmp_path / "templates"
    templates.mkdir()
    page = templates / "page.html"
    page.write_text("<p>one</p>")
    (templates / "notes.txt").write_text("not watched")
    args = ["--reload", "--reload-dir", str(templates), "--reload-include", "*.html"]
    env = {"PYTHONPATH": str(ROOT)}  # this tree's gateway, from another directory
    gateway = start("reloaddirapp:app", "-b", "127.0.0.1:0", *args, env=env, cwd=tmp_path)
    try:
        gateway.wait_for_line(rf"reloading on changes under {templates} \(\*\.py, \*\.html\)")
        later = time.time() + 5  # a new mtime even on coarse-grained filesystems
        os.utime(templates / "notes.txt", (later, later))
        time.sleep(1.2)  # two polls: a file no pattern matches changes nothing
        assert "changed: restarting" not in gateway.log
        page.write_text("<p>two</p>")
        os.utime(page, (later, later))
        gateway.wait_for_line(r"page\.html changed: restarting")
        poll(lambda: gateway.count_lines(r"Listening at") >= 2, 15, "the new child")
        assert requests.get(gateway.url + "/", timeout=10).text == "ok"
    finally:
        gateway.stop()  # SIGTERM: the reloader stops its child (a kill would orphan it)
