"""The status page in a real headless Chromium: it loads, fills in and updates under load.

Skipped when no Chromium is installed (``.ci/run`` installs Debian's ``chromium`` when it
runs as root with apt-get).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.gateway.gateway_helpers import Load, poll
from tests.gateway.operations.headless_chromium import Chromium, chromium_path

APPS = "tests.gateway.gateway_apps"
EXECUTABLE = chromium_path()
pytestmark = pytest.mark.skipif(
    EXECUTABLE is None, reason="no chromium installed (apt-get install chromium)"
)


@pytest.fixture
def browser() -> Iterator[Chromium]:
    assert EXECUTABLE is not None
    chromium = Chromium(EXECUTABLE)
    yield chromium
    chromium.close()


def shown(browser: Chromium, route: str) -> dict[str, Any]:
    """What the page shows now: a route's row and the poll count."""
    value: dict[str, Any] = browser.evaluate(
        f"""(() => {{
        if (!document.getElementById('summary')) return {{polls: 0}};  // not loaded yet
        const row = document.querySelector('#routes tr[data-route="{route}"]');
        const text = (selector) => row ? row.querySelector(selector).textContent : null;
        return {{
          polls: Number(document.body.dataset.polls),
          ok: row ? Number(text('.c2xx').replace(/,/g, '')) : -1,
          rate: text('.rate'), p50: text('.p50'),
          summary: document.getElementById('summary').textContent,
          workers: document.querySelectorAll('#workers tr[data-pid]').length,
          sparkline: row ? row.querySelector('.spark polyline, .spark line') !== null : false,
        }};
        }})()"""
    )
    return value


def test_page_fills_in_and_updates_under_load(start_gateway: Any, browser: Chromium) -> None:
    gateway = start_gateway(
        "--mount",
        f"/app={APPS}:info",
        "--mount",
        f"/slow={APPS}:info",
        "-b",
        "127.0.0.1:0",
        "--metrics-bind",
        "127.0.0.1:0",
    )
    with requests.Session() as session:
        for _ in range(7):
            assert session.get(gateway.url + "/app/x", timeout=10).status_code == 200
    with Load(gateway.port, "/slow/y?sleep=0.01", threads=2, seconds=20) as load:
        load.wait_ok(5)
        browser.open(f"http://127.0.0.1:{gateway.metrics_port}/status")
        first: dict[str, Any] = {}

        def filled() -> bool:
            first.update(shown(browser, "/slow"))
            return first["polls"] >= 1

        poll(filled, 10, "the page's first poll")
        # The numbers of real requests, as the page drew them from status.json.
        assert shown(browser, "/app")["ok"] == 7
        assert first["ok"] >= 5
        assert first["p50"].endswith((" ms", " s")), first
        assert first["p50"].endswith(" s") or float(first["p50"].split()[0]) >= 10  # 10 ms sleep
        assert first["workers"] == 1
        assert first["sparkline"]
        assert "1 worker" in first["summary"]
        later: dict[str, Any] = {}

        def updated() -> bool:
            later.update(shown(browser, "/slow"))
            return later["polls"] > first["polls"] and later["ok"] > first["ok"]

        poll(updated, 10, "the page to update while the load runs")
        assert float(later["rate"]) > 0
        poll(lambda: shown(browser, "/slow")["ok"] > later["ok"], 10, "one more update under load")
    assert not load.failures
    assert shown(browser, "/app")["ok"] == 7
    assert gateway.stop() == 0
