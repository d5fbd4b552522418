"""apps/canary_proxy.py: two upstream pools chosen per request, single process and workers."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import poll

APPS = "tests.gateway.gateway_apps"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_canary_proxy_routes_by_cookie_and_header(start_gateway: Any, workers: str) -> None:
    stable = [start_gateway(f"{APPS}:named('stable')", "-b", "127.0.0.1:0") for _ in range(2)]
    canary = start_gateway(f"{APPS}:named('canary')", "-b", "127.0.0.1:0")
    front = start_gateway(
        "-b",
        "127.0.0.1:0",
        "-w",
        workers,
        "apps.canary_proxy:app",
        env={
            "STABLE_URLS": ",".join(g.url for g in stable),
            "CANARY_URLS": canary.url,
        },
    )
    if workers == "2":
        poll(lambda: front.count_lines("is listening") >= 2, 15, "two workers")
    stable_pids = set()
    for _ in range(6):
        with requests.Session() as session:
            plain = session.get(front.url + "/items?x=1", timeout=5)
            assert plain.status_code == 200
            assert plain.json()["app"] == "stable"
            assert plain.json()["path_info"] == "/items"
            assert plain.headers["X-Pool"] == "stable"
            stable_pids.add(plain.json()["pid"])
            by_cookie = session.get(
                front.url + "/items", cookies={"session": "a", "canary": "1"}, timeout=5
            )
            assert by_cookie.json()["app"] == "canary"
            assert by_cookie.headers["X-Pool"] == "canary"
            by_header = session.get(front.url + "/", headers={"X-Canary": "1"}, timeout=5)
            assert by_header.json()["app"] == "canary"
    assert stable_pids == {g.proc.pid for g in stable}  # both stable members served
    assert front.stop() == 0
