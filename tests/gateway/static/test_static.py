"""Static files over real sockets: statuses, validators, ranges, codings, safe paths, streaming."""

from __future__ import annotations

import email
import email.policy
import gzip
import hashlib
import http.client
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.gateway.conftest import LiveServer
from thor.tcp_connection import FileSegment
from thor_gateway.static import StaticHandler
from thor_gateway.static.body import CHUNK

CSS = b"body { color: #333; }\n" * 40  # 880 bytes
BIG = 4 * 1024 * 1024 + 123
# The body of a large file goes by sendfile where it can, else read in chunks: test both.
SENDFILE = pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "pread"])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder to serve, and a secret beside it that must never be served."""
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "css" / "site.css.gz").write_bytes(gzip.compress(CSS))
    (root / "plain.txt").write_bytes(b"plain text\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"SECRET=2\n")
    (root / "big.bin").write_bytes(os.urandom(BIG))
    (tmp_path / "secret.txt").write_bytes(b"SECRET=3\n")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    (root / "in.txt").symlink_to(root / "plain.txt")
    os.mkfifo(root / "pipe")  # opening it for reading would wait for a writer
    return root


Serve = Callable[..., LiveServer]


@pytest.fixture
def serve(live_server: Callable[..., LiveServer], tree: Path) -> Serve:
    def make(**options: Any) -> LiveServer:
        return live_server().mount(StaticHandler(str(tree), **options), b"/static")

    return make


def get(
    live: LiveServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def raw(live: LiveServer, target: bytes) -> bytes:
    """Send a request line exactly as given (no client normalises it) and read the answer."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_get_and_head(serve: Serve, tree: Path) -> None:
    live = serve()
    response, body = get(live, "/static/css/site.css")
    assert response.status == 200
    assert body == CSS
    assert response.getheader("Content-Type") == "text/css; charset=utf-8"
    assert response.getheader("Content-Length") == str(len(CSS))
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("Vary") == "Accept-Encoding"  # a .gz sibling exists
    assert response.getheader("Content-Encoding") is None
    assert response.getheader("Cache-Control") is None  # none unless configured
    etag = response.getheader("ETag")
    assert etag
    assert etag.startswith('"')
    mtime = int((tree / "css" / "site.css").stat().st_mtime)
    assert response.getheader("Last-Modified") == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime)
    )
    head, head_body = get(live, "/static/css/site.css", method="HEAD")
    assert head.status == 200
    assert head_body == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Vary"):
        assert head.getheader(name) == response.getheader(name)
    response, body = get(live, "/static/empty.txt")
    assert (response.status, body, response.getheader("Content-Length")) == (200, b"", "0")


def test_cache_control_setting(serve: Serve) -> None:
    live = serve(cache_control="public, max-age=3600")
    response, _ = get(live, "/static/plain.txt")
    assert response.getheader("Cache-Control") == "public, max-age=3600"
    response, _ = get(live, "/static/plain.txt", {"If-None-Match": response.getheader("ETag")})
    assert response.status == 304
    assert response.getheader("Cache-Control") == "public, max-age=3600"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(serve: Serve, method: str) -> None:
    response, _ = get(serve(), "/static/plain.txt", method=method)
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD"


def test_conditionals(serve: Serve) -> None:
    live = serve()
    first, _ = get(live, "/static/plain.txt")
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    assert etag
    assert modified
    cases = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"nope", W/{etag}'}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        ({"If-Modified-Since": modified}, 304),
        ({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
        ({"If-None-Match": '"nope"', "If-Modified-Since": modified}, 200),  # §13.2.2 step 3
        ({"If-Match": etag}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 412),
        ({"If-Unmodified-Since": modified}, 200),
        ({"If-Match": '"nope"', "If-None-Match": etag}, 412),  # 412 comes first
    ]
    for headers, status in cases:
        response, body = get(live, "/static/plain.txt", headers)
        assert response.status == status, headers
        if status == 304:
            assert body == b""
            assert response.getheader("ETag") == etag
            assert response.getheader("Content-Length") is None
        elif status == 200:
            assert body == b"plain text\n"
    head, _ = get(live, "/static/plain.txt", {"If-None-Match": etag}, method="HEAD")
    assert head.status == 304


@SENDFILE
def test_single_range_and_suffix(serve: Serve, tree: Path, sendfile: bool) -> None:
    live = serve(sendfile=sendfile)
    data = (tree / "big.bin").read_bytes()
    response, body = get(live, "/static/big.bin", {"Range": "bytes=100-199"})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes 100-199/{BIG}"
    assert body == data[100:200]
    response, body = get(live, "/static/big.bin", {"Range": "bytes=-10"})
    assert response.status == 206
    assert body == data[-10:]
    response, body = get(live, "/static/big.bin", {"Range": f"bytes={BIG - 5}-"})
    assert body == data[-5:]
    # A large range streams through the reader.
    response, body = get(live, "/static/big.bin", {"Range": "bytes=1000-2000999"})
    assert response.status == 206
    assert body == data[1000:2001000]
    # §14.2: range handling is defined for GET only; HEAD ignores Range.
    head, body = get(live, "/static/big.bin", {"Range": "bytes=0-9"}, method="HEAD")
    assert head.status == 200
    assert body == b""
    assert head.getheader("Content-Length") == str(BIG)


def test_unsatisfiable_and_ignored_ranges(serve: Serve) -> None:
    live = serve()
    response, body = get(live, "/static/plain.txt", {"Range": "bytes=100-"})
    assert response.status == 416
    assert response.getheader("Content-Range") == "bytes */11"
    response, body = get(live, "/static/plain.txt", {"Range": "bytes=5-1"})  # invalid: ignored
    assert (response.status, body) == (200, b"plain text\n")
    response, body = get(live, "/static/plain.txt", {"Range": "lines=1-2"})
    assert (response.status, body) == (200, b"plain text\n")


@SENDFILE
def test_multiple_ranges(serve: Serve, tree: Path, sendfile: bool) -> None:
    live = serve(sendfile=sendfile)
    data = (tree / "big.bin").read_bytes()
    wanted = [(0, 9), (100_000, 299_999), (BIG - 3, BIG - 1)]
    spec = ",".join(f"{a}-{b}" for a, b in wanted)
    response, body = get(live, "/static/big.bin", {"Range": f"bytes={spec}"})
    assert response.status == 206
    content_type = response.getheader("Content-Type") or ""
    assert content_type.startswith("multipart/byteranges; boundary=")
    assert response.getheader("Content-Length") == str(len(body))
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    parts = list(message.iter_parts())
    assert len(parts) == len(wanted)
    for part, (first, last) in zip(parts, wanted, strict=True):
        assert part["Content-Type"] == "application/octet-stream"
        assert part["Content-Range"] == f"bytes {first}-{last}/{BIG}"
        assert part.get_payload(decode=True) == data[first : last + 1]


def test_if_range(serve: Serve) -> None:
    live = serve()
    first, _ = get(live, "/static/plain.txt")
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    assert etag
    assert modified
    for if_range, status in [(etag, 206), (modified, 206), ('"old"', 200), ("W/" + etag, 200)]:
        response, body = get(
            live, "/static/plain.txt", {"Range": "bytes=0-4", "If-Range": if_range}
        )
        assert response.status == status, if_range
        assert body == (b"plain" if status == 206 else b"plain text\n")


def test_precompressed_gzip(serve: Serve) -> None:
    live = serve()
    response, body = get(live, "/static/css/site.css", {"Accept-Encoding": "gzip, deflate, br"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Content-Type") == "text/css; charset=utf-8"
    assert response.getheader("Vary") == "Accept-Encoding"
    assert gzip.decompress(body) == CSS
    gz_etag = response.getheader("ETag")
    plain, plain_body = get(live, "/static/css/site.css", {"Accept-Encoding": "gzip;q=0, br"})
    assert plain.getheader("Content-Encoding") is None
    assert plain_body == CSS
    assert plain.getheader("Vary") == "Accept-Encoding"
    assert plain.getheader("ETag") != gz_etag  # one tag per representation
    again, _ = get(
        live, "/static/css/site.css", {"Accept-Encoding": "gzip", "If-None-Match": gz_etag or ""}
    )
    assert again.status == 304
    assert again.getheader("Vary") == "Accept-Encoding"
    # Without a sibling: the plain file (Vary is declared on the whole route).
    response, _ = get(live, "/static/plain.txt", {"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") is None
    assert response.getheader("Vary") == "Accept-Encoding"
    # The .gz asked for by name is a gzip file, not an encoding.
    response, body = get(live, "/static/css/site.css.gz")
    assert response.getheader("Content-Type") == "application/gzip"
    assert response.getheader("Content-Encoding") is None
    assert gzip.decompress(body) == CSS
    off = serve(precompressed=False)
    response, body = get(off, "/static/css/site.css", {"Accept-Encoding": "gzip"})
    assert body == CSS
    assert response.getheader("Vary") is None


@pytest.mark.parametrize(
    "target",
    [
        b"/static/../secret.txt",
        b"/static/css/../../secret.txt",
        b"/static/%2e%2e/secret.txt",
        b"/static/%2E%2E/secret.txt",
        b"/static/css/%2e%2e%2f%2e%2e%2fsecret.txt",
        b"/static/..%2fsecret.txt",
        b"/static/..%5csecret.txt",
        b"/static/..\\secret.txt",
        b"/static/plain.txt%00.css",
        b"/static/.env",
        b"/static/%2eenv",
        b"/static/.git/config",
        b"/static/out.txt",
        b"/static/outdir/secret.txt",
        b"/static//etc/passwd",
        b"/static/css/./site.css",
    ],
)
def test_unsafe_paths_are_404(serve: Serve, target: bytes) -> None:
    answer = raw(serve(), target)
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:80]
    assert b"SECRET" not in answer
    assert b"root:" not in answer


def test_symlinks(serve: Serve) -> None:
    live = serve()
    response, body = get(live, "/static/in.txt")  # a link inside the folder is fine
    assert (response.status, body) == (200, b"plain text\n")
    trusting = serve(follow_symlinks=True)
    response, body = get(trusting, "/static/out.txt")
    assert (response.status, body) == (200, b"SECRET=3\n")
    # Hidden files stay refused even then.
    response, _ = get(trusting, "/static/.env")
    assert response.status == 404


def test_directories(serve: Serve) -> None:
    live = serve()
    for path in ("/static/docs", "/static/docs/", "/static", "/static/", "/static/plain.txt/"):
        response, _ = get(live, path)
        assert response.status == 404, path
    response, _ = get(live, "/static/pipe")  # not a regular file, and the loop did not block
    assert response.status == 404
    indexed = serve(index=True)
    response, body = get(indexed, "/static/docs/")
    assert (response.status, body) == (200, b"<h1>docs</h1>\n")
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    response, _ = get(indexed, "/static/docs")
    assert response.status == 301
    assert response.getheader("Location") == "docs/"
    response, _ = get(indexed, "/static/css/")  # no index.html there
    assert response.status == 404


def slow_client(live: LiveServer) -> socket.socket:
    """A connection with small kernel buffers on both ends, so the server has to wait.

    Left to autotuning, loopback buffers take megabytes: the whole file would leave the
    server at once and no flow control would be exercised.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before the handshake
    sock.settimeout(10)
    sock.connect(("127.0.0.1", live.port))

    def shrink() -> int:
        for conn in live.server.connections:
            conn.tcp_conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        return len(live.server.connections)

    deadline = time.monotonic() + 10
    while not live.call(shrink) and time.monotonic() < deadline:
        pass
    return sock


def _open_fds_on(path: Path) -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                count += 1
        except OSError:
            pass
    return count


def _server_buffered(live: LiveServer) -> tuple[int, int]:
    """(bytes of response held in memory, bytes queued) for the server's connections.

    A file queued for sendfile is queued but not in memory.
    """
    held = queued = 0
    for conn in live.server.connections:
        tcp = conn.tcp_conn
        held += conn._out_size
        held += sum(len(i) for i in tcp._buffer if not isinstance(i, FileSegment))
        queued += conn._out_size + tcp.write_buffer_size
    return held, queued


@SENDFILE
def test_slow_reader_gets_everything_in_bounded_memory(
    serve: Serve, tree: Path, sendfile: bool
) -> None:
    live = serve(sendfile=sendfile)
    expected = hashlib.sha256((tree / "big.bin").read_bytes()).hexdigest()
    sock = slow_client(live)
    sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, body_start = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: %d" % BIG in head
    digest = hashlib.sha256(body_start)
    got = len(body_start)
    most = most_queued = 0
    reads = 0
    while got < BIG:
        chunk = sock.recv(16 * 1024)
        assert chunk, "the server closed early"
        digest.update(chunk)
        got += len(chunk)
        reads += 1
        if reads % 8 == 0:  # a round trip to the loop thread: the reader is slow
            held, queued = live.call(_server_buffered, live)
            most, most_queued = max(most, held), max(most_queued, queued)
    sock.close()
    assert got == BIG
    assert digest.hexdigest() == expected
    # The file never sits in memory: what waits is at most the write buffer's high-water
    # mark (256 KiB) plus a chunk, not the 4 MiB file; by sendfile, nothing of it.
    assert most <= 256 * 1024 + 2 * CHUNK, most
    assert most_queued > 0  # the reader was slow enough to be waited for
    if sendfile:
        assert most == 0  # what waited was the file, in the kernel's hands


@SENDFILE
def test_a_client_leaving_mid_file_releases_the_descriptor(
    serve: Serve, tree: Path, sendfile: bool
) -> None:
    live = serve(sendfile=sendfile)
    big = (tree / "big.bin").resolve()
    sock = slow_client(live)
    sock.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536)
    deadline = time.monotonic() + 10
    while _open_fds_on(big) == 0 and time.monotonic() < deadline:
        live.call(lambda: None)
    # We read almost nothing: the sender is mid-file, paused on our full window.
    assert _open_fds_on(big) == 1
    assert live.call(_server_buffered, live)[0] <= 256 * 1024 + 2 * CHUNK
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # a reset
    while _open_fds_on(big) and time.monotonic() < deadline:
        live.call(lambda: None)
    assert _open_fds_on(big) == 0


@SENDFILE
def test_keep_alive_serves_files_in_turn(serve: Serve, tree: Path, sendfile: bool) -> None:
    live = serve(sendfile=sendfile)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    data = (tree / "big.bin").read_bytes()
    try:
        for path, expected in [
            ("/static/big.bin", data),
            ("/static/plain.txt", b"plain text\n"),
            ("/static/big.bin", data),
        ]:
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == expected
    finally:
        conn.close()


def test_over_tls_large_files_are_read_in_chunks(
    live_server: Callable[..., LiveServer], tree: Path, tmp_path: Path
) -> None:
    import trustme

    from thor.tls import server_context

    ca = trustme.CA()
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    live = live_server(tls_context=server_context(str(tmp_path / "server.pem")))
    live.mount(StaticHandler(str(tree)), b"/static")  # sendfile on: TLS declines it
    response = requests.get(
        f"https://localhost:{live.port}/static/big.bin",
        headers={"Range": "bytes=10-3000009"},
        verify=str(tmp_path / "ca.pem"),
        timeout=20,
    )
    assert response.status_code == 206
    assert response.content == (tree / "big.bin").read_bytes()[10:3000010]


def test_remembered_small_files_follow_changes(serve: Serve, tree: Path, tmp_path: Path) -> None:
    live = serve()
    plain = tree / "plain.txt"
    for _ in range(2):  # the second answer comes from memory
        response, body = get(live, "/static/plain.txt")
        assert body == b"plain text\n"
    etag = response.getheader("ETag")
    plain.write_bytes(b"PLAIN TEXT\n")  # same size
    os.utime(plain, ns=(plain.stat().st_atime_ns, plain.stat().st_mtime_ns + 10**9))
    response, body = get(live, "/static/plain.txt")
    assert body == b"PLAIN TEXT\n"
    assert response.getheader("ETag") != etag
    # A gzip sibling that appears later is taken.
    get(live, "/static/plain.txt", {"Accept-Encoding": "gzip"})
    (tree / "plain.txt.gz").write_bytes(gzip.compress(b"PLAIN TEXT\n"))
    response, body = get(live, "/static/plain.txt", {"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"PLAIN TEXT\n"
    # A remembered file swapped for a symlink out of the folder is refused.
    plain.unlink()
    (tree / "plain.txt.gz").unlink()
    plain.symlink_to(tmp_path / "secret.txt")
    response, body = get(live, "/static/plain.txt")
    assert response.status == 404
    assert b"SECRET" not in body
