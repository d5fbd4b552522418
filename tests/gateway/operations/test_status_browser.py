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

ROW = "document.querySelector('#routes tr[data-route=\"/app\"]')"


@pytest.fixture
def browser() -> Iterator[Chromium]:
    assert EXECUTABLE is not None
    chromium = Chromium(EXECUTABLE)
    yield chromium
    chromium.close()


def shown(browser: Chromium) -> dict[str, Any]:
    """What the page shows now: the /app row's numbers and the poll count."""
    value: dict[str, Any] = browser.evaluate(
        f"""(() => {{
        if (!document.getElementById('summary')) return {{polls: 0}};  // not loaded yet
        const row = {ROW};
        const text = (selector) => row ? row.querySelector(selector).textContent : null;
        return {{
          polls: Number(document.body.dataset.polls),
          ok: row ? Number(text('.c2xx').replace(/,/g, '')) : -1,
          rate: text('.rate'), p50: text('.p50'),
          summary: document.getElementById('summary').textContent,
          workers: document.querySelectorAll('#workers tr[data-pid]').length,
          sparkPoints: row ? row.querySelector('.spark polyline, .spark line') !== null : false,
        }};
        }})()"""
    )
    return value


def test_page_fills_in_and_updates_under_load(start_gateway: Any, browser: Chromium) -> None:
    gateway = start_gateway(
        "--mount", f"/app={APPS}:info", "-b", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"
    )
    with requests.Session() as session:
        for _ in range(7):
            assert session.get(gateway.url + "/app/x?sleep=0.01", timeout=10).status_code == 200
    browser.open(f"http://127.0.0.1:{gateway.metrics_port}/status")
    first: dict[str, Any] = {}

    def filled() -> bool:
        first.update(shown(browser))
        return first["polls"] >= 1

    poll(filled, 10, "the page's first poll")
    # The numbers of the requests above, as the page drew them from status.json.
    assert first["ok"] == 7
    assert first["p50"].endswith(" ms")
    assert 10 <= float(first["p50"].split()[0]) <= 25  # the app sleeps 10 ms
    assert first["workers"] == 1
    assert first["sparkPoints"]
    assert "1 worker" in first["summary"]
    with Load(gateway.port, "/app/y", threads=2, seconds=15) as load:
        load.wait_ok(20)
        later: dict[str, Any] = {}

        def updated() -> bool:
            later.update(shown(browser))
            return later["polls"] > first["polls"] and later["ok"] > first["ok"] + 20

        poll(updated, 10, "the page to update while the load runs")
        assert float(later["rate"]) > 0
        seen = later["ok"]
        poll(lambda: shown(browser)["ok"] > seen, 10, "one more update under load")
    assert not load.failures
    assert gateway.stop() == 0
