"""The WSGI adapter's pieces without sockets: thread pool, wsgi.input, environ, header rules."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.gateway.adapter_helpers import wait_for
from thor_gateway.hosting.threadpool import ThreadPool
from thor_gateway.hosting.wsgi import AppOutputError, encode_headers, encode_status
from thor_gateway.hosting.wsgi_environ import ErrorStream, FileWrapper, build_environ
from thor_gateway.hosting.wsgi_input import BodyStream, EmptyBody, RequestBodyError
from thor_gateway.routing.request import Request

# ----------------------------------------------------------------------------- pool


def test_pool_runs_tasks_on_worker_threads() -> None:
    pool = ThreadPool(threads=2, max_queue=4)
    names: list[str] = []
    done = threading.Semaphore(0)

    def task() -> None:
        names.append(threading.current_thread().name)
        done.release()

    for _ in range(5):
        assert pool.submit(task)
    for _ in range(5):
        assert done.acquire(timeout=5)
    assert all(name.startswith("thor-worker-") for name in names)
    assert pool.shutdown(wait=True, timeout=5)


def test_pool_refuses_beyond_threads_plus_queue() -> None:
    pool = ThreadPool(threads=2, max_queue=1)
    release = threading.Event()
    started = threading.Semaphore(0)

    def block() -> None:
        started.release()
        release.wait(10)

    assert pool.submit(block)
    assert pool.submit(block)
    assert pool.submit(block)  # queued
    assert pool.full
    assert not pool.submit(block)
    assert started.acquire(timeout=5)
    assert started.acquire(timeout=5)
    assert pool.admitted == 3
    release.set()
    wait_for(lambda: pool.admitted == 0, what="the tasks to finish")
    assert not pool.full
    assert pool.shutdown(wait=True, timeout=5)
    assert not pool.submit(block), "a shut-down pool takes nothing"


def test_pool_starts_threads_on_demand() -> None:
    pool = ThreadPool(threads=8, max_queue=0)
    done = threading.Event()
    assert pool.submit(done.set)
    assert done.wait(5)
    assert len(pool._workers) == 1
    assert pool.shutdown(wait=True, timeout=5)


def test_pool_logs_a_failing_task_and_goes_on(caplog: Any) -> None:
    pool = ThreadPool(threads=1, max_queue=2)
    done = threading.Event()

    def fail() -> None:
        raise ValueError("task bug")

    with caplog.at_level(logging.ERROR, "thor_gateway.threadpool"):
        assert pool.submit(fail)
        assert pool.submit(done.set)
        assert done.wait(5)
    assert "task bug" in caplog.text
    assert pool.shutdown(wait=True, timeout=5)


@pytest.mark.parametrize(("threads", "queue"), [(0, 1), (1, -1)])
def test_pool_rejects_bad_sizes(threads: int, queue: int) -> None:
    with pytest.raises(ValueError):
        ThreadPool(threads, queue)


# ----------------------------------------------------------------------- wsgi.input


class FakeLoop:
    """Stands in for the loop thread: calls posted with run_in_loop run when drained."""

    def __init__(self) -> None:
        self.posted: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.lock = threading.Lock()

    def run_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            self.posted.append((fn, args))

    def drain(self) -> int:
        with self.lock:
            posted, self.posted = self.posted, []
        for fn, args in posted:
            fn(*args)
        return len(posted)


def make_stream(wait_limit: float = 5.0) -> tuple[BodyStream, FakeLoop, list[bool]]:
    loop = FakeLoop()
    pauses: list[bool] = []
    stream = BodyStream(loop.run_in_loop, pauses.append, wait_limit)
    stream.start_paused()
    return stream, loop, pauses


def read_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_first_read_resumes_the_paused_body() -> None:
    stream, loop, pauses = make_stream()
    assert pauses == [True]
    thread, box = read_in_thread(lambda: stream.read(5))
    wait_for(lambda: loop.posted, what="a resume request")
    loop.drain()
    assert pauses == [True, False]
    stream.feed(b"hel")
    stream.feed(b"lo world")
    thread.join(5)
    assert box == [b"hello"]
    stream.finish()
    assert stream.read() == b" world"
    assert stream.read() == b""


def test_high_water_pauses_and_draining_resumes() -> None:
    stream, loop, pauses = make_stream()
    stream._paused = False  # as after the first read
    pauses.clear()
    stream.feed(b"a" * stream.high_water)
    assert pauses == [True]
    data = stream.read(stream.high_water - stream.low_water + 1)
    assert len(data) == stream.high_water - stream.low_water + 1
    assert loop.drain() == 1
    assert pauses == [True, False]


def test_failed_body_raises_oserror_never_short_data() -> None:
    stream, _, _ = make_stream()
    stream.feed(b"abc")
    stream.fail(ConnectionError("client left"))
    with pytest.raises(RequestBodyError) as info:
        stream.read(10)
    assert isinstance(info.value, OSError)
    with pytest.raises(OSError):
        stream.read()


def test_complete_body_stays_readable_after_a_late_error() -> None:
    stream, _, _ = make_stream()
    stream.feed(b"abc")
    stream.finish()
    stream.fail(ConnectionError("half-close after the body"))
    assert stream.read() == b"abc"


def test_the_worker_gives_up_when_no_report_ever_comes() -> None:
    stream, _, _ = make_stream(wait_limit=0.2)
    with pytest.raises(RequestBodyError):
        stream.read(1)


def test_readline_limits_and_lines() -> None:
    stream, _, _ = make_stream()
    stream.feed(b"one\ntwo\nthree")
    stream.finish()
    assert stream.readline(2) == b"on"
    assert stream.readline() == b"e\n"
    assert stream.readline(0) == b""
    assert stream.readlines() == [b"two\n", b"three"]
    assert stream.readline() == b""


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7])
def test_reads_across_chunk_boundaries(split: int) -> None:
    """Whatever the chunks, reads and lines come out the same (the buffer keeps the chunks)."""
    data = b"ab\ncdef\n\nghijk\nlmn"
    stream, _, _ = make_stream()
    for i in range(0, len(data), split):
        stream.feed(data[i : i + split])
    stream.finish()
    assert stream.readline() == b"ab\n"
    assert stream.read(1) == b"c"
    assert stream.readline(2) == b"de"
    assert stream.readline() == b"f\n"
    assert stream.readline() == b"\n"
    assert stream.read(4) == b"ghij"
    assert stream.readlines() == [b"k\n", b"lmn"]
    assert stream.read() == b""
    assert stream._buffered == 0


def test_a_whole_chunk_is_handed_over_without_a_copy() -> None:
    stream, _, _ = make_stream()
    chunk = b"x" * 1000
    stream.feed(chunk)
    stream.finish()
    assert stream.read(1000) is chunk


def test_readlines_hint() -> None:
    stream, _, _ = make_stream()
    stream.feed(b"a\nb\nc\n")
    stream.finish()
    assert stream.readlines(2) == [b"a\n"]
    assert list(stream) == [b"b\n", b"c\n"]


def test_empty_body() -> None:
    body = EmptyBody()
    assert body.read() == body.read(5) == body.readline() == b""
    assert body.readlines() == []
    assert list(body) == []


# -------------------------------------------------------------------------- environ


def request(**overrides: Any) -> Request:
    fields: dict[str, Any] = {
        "method": b"GET",
        "target": b"/m/x?q=1",
        "raw_path": b"/m/x",
        "query": b"q=1",
        "script_name": b"/m",
        "path_info": b"/x",
        "headers": [(b"Host", b"h")],
        "http_version": b"1.0",
        "scheme": "https",
        "client": None,
        "server": None,
    }
    fields.update(overrides)
    return Request(**fields)


def test_environ_for_a_unix_socket_request() -> None:
    env = build_environ(request(), wsgi_input=EmptyBody(), errors=ErrorStream(), multiprocess=True)
    assert env["SERVER_NAME"] == "localhost"
    assert env["SERVER_PORT"] == "443"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["wsgi.url_scheme"] == "https"
    assert env["wsgi.multiprocess"] is True
    assert "REMOTE_ADDR" not in env


def test_environ_latin1_header_values_and_dropped_names() -> None:
    headers = [(b"X-Latin", b"caf\xe9"), (b"x_under", b"1"), (b"X-UNDER", b"2")]
    env = build_environ(
        request(headers=headers), wsgi_input=EmptyBody(), errors=ErrorStream(), multiprocess=False
    )
    assert env["HTTP_X_LATIN"] == "café"
    assert env["HTTP_X_UNDER"] == "2"


def test_error_stream_rejects_bytes() -> None:
    with pytest.raises(TypeError):
        ErrorStream().write(b"x")  # type: ignore[arg-type]


def test_file_wrapper_blocks_and_close(tmp_path: Any) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    with path.open("rb") as handle:
        wrapper = FileWrapper(handle, 4)
        assert list(wrapper) == [b"0123", b"4567", b"89"]
        wrapper.close()
        assert handle.closed


# ------------------------------------------------------------------ status, headers


@pytest.mark.parametrize(
    ("status", "expected"),
    [("200 OK", (200, b"OK")), ("404 Not Found", (404, b"Not Found")), ("299 ", (299, b""))],
)
def test_valid_statuses(status: str, expected: tuple[int, bytes]) -> None:
    assert encode_status(status) == expected


@pytest.mark.parametrize("status", ["200", "2000 X", "100 Continue", "200 A\nB", b"200 OK", 200])
def test_invalid_statuses(status: Any) -> None:
    with pytest.raises(AppOutputError):
        encode_status(status)


def test_valid_headers_are_encoded_latin1() -> None:
    assert encode_headers([("Content-Type", "text/plain"), ("X-Name", "café")]) == [
        (b"Content-Type", b"text/plain"),
        (b"X-Name", b"caf\xe9"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        ("not", "a list"),
        [("a", "b", "c")],
        [["List", "item"]],
        [(b"Bytes", "v")],
        [("", "empty name")],
        [("Keep-Alive", "5")],
        [("Upgrade", "h2c")],
        [("Content-Length", "\u00b2")],
        [("X", "\x7f")],
    ],
)
def test_invalid_headers(headers: Any) -> None:
    with pytest.raises(AppOutputError):
        encode_headers(headers)
    with pytest.raises(AppOutputError):  # never remembered as valid
        encode_headers(headers)


def test_remembered_headers_come_as_a_new_list_each_time() -> None:
    headers = [("Content-Type", "text/plain"), ("X-Cache", "me")]
    first = encode_headers(headers)
    first.append((b"Content-Length", b"5"))  # as the adapter does
    second = encode_headers(list(headers))
    assert second == [(b"Content-Type", b"text/plain"), (b"X-Cache", b"me")]
    assert second is not first


def test_a_full_cache_starts_again() -> None:
    from thor_gateway.hosting import wsgi_output as wsgi

    for i in range(wsgi._CACHE_SIZE + 10):
        assert encode_headers([("X-N", str(i))]) == [(b"X-N", str(i).encode())]
        assert encode_status(f"200 R{i}") == (200, f"R{i}".encode())
    assert len(wsgi._HEADER_LISTS) <= wsgi._CACHE_SIZE
    assert len(wsgi._STATUSES) <= wsgi._CACHE_SIZE
