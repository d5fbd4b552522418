"""SIGHUP and SIGTERM under keep-alive load lose no request (issue 16, point 3).

A strict client (:mod:`tests.gateway.keepalive_load`: no retries) keeps 24 connections
busy on a WSGI, an ASGI and a proxy route of ``-w 2`` while the master is signalled.  A
worker that closed an idle keep-alive connection as it retired lost the request the client
was sending on it at that moment (wrk: 25 to 77 read errors over two SIGHUPs).
"""

from __future__ import annotations

import signal
from typing import Any

from tests.gateway.gateway_helpers import poll
from tests.gateway.keepalive_load import KeepAliveLoad

PATHS = ["/wsgi/", "/asgi/", "/proxy/"]


def start(start_gateway: Any) -> Any:
    origin = start_gateway("apps.hello_wsgi:app", "-b", "127.0.0.1:0", "--keep-alive", "300")
    gateway = start_gateway(
        "-b",
        "127.0.0.1:0",
        "--mount",
        "/wsgi=apps.hello_wsgi:app",
        "--mount",
        "/asgi=apps.hello_asgi:app",
        "--proxy",
        f"/proxy={origin.url}",
        "-w",
        "2",
        "--graceful-timeout",
        "10",
        "--no-access-log",
    )
    poll(lambda: gateway.count_lines("is listening") >= 2, 15, "two workers")
    return gateway


def test_sighup_under_keepalive_load_loses_nothing(start_gateway: Any) -> None:
    gateway = start(start_gateway)
    with KeepAliveLoad(gateway.port, PATHS, connections=24, seconds=30) as load:
        load.wait_ok(300)
        gateway.signal(signal.SIGHUP)
        poll(lambda: gateway.count_lines(r"worker \d+ exited") >= 2, 20, "the old workers to go")
        served = load.tally.ok
        load.wait_ok(served + 300)
    tally = load.tally
    assert tally.lost == [], f"{len(tally.lost)} lost of {tally.ok}: {tally.lost[:5]}"
    assert tally.bad == []
    assert (tally.refused, tally.unsent) == (0, 0)
    assert tally.reconnects >= 1  # the old workers' connections were handed over
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(20) == 0


def test_sigterm_under_keepalive_load_answers_what_was_sent(start_gateway: Any) -> None:
    gateway = start(start_gateway)
    with KeepAliveLoad(gateway.port, PATHS, connections=24, seconds=30) as load:
        load.wait_ok(300)
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    tally = load.tally
    # Connections refused after the stop never sent their request; none that was sent on
    # an accepted connection may be lost.
    assert tally.lost == [], f"{len(tally.lost)} lost of {tally.ok}: {tally.lost[:5]}"
    assert tally.bad == []
    assert tally.reconnects >= 24  # every kept-alive connection was told Connection: close
