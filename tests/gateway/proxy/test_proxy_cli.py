"""thor-gateway --proxy and [[proxy]] tables, end to end: the CLI in a subprocess."""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from tests.gateway.proxy_support import echo_server, raw_upstream, read_all


def test_proxy_flag_balances_and_strips_the_prefix(start_gateway: Any) -> None:
    with echo_server("a") as a, echo_server("b") as b:
        gateway = start_gateway("-b", "127.0.0.1:0", "--proxy", f"/api={a.url}/v1,{b.url}/v1")
        docs = [requests.get(gateway.url + "/api/x?y=1", timeout=10).json() for _ in range(4)]
        assert Counter(d["server"] for d in docs) == {"a": 2, "b": 2}
        assert {d["path"] for d in docs} == {"/v1/x?y=1"}
        assert requests.get(gateway.url + "/elsewhere", timeout=10).status_code == 404
        assert gateway.stop() == 0


def test_proxy_tables_carry_per_route_settings(start_gateway: Any, tmp_path: Path) -> None:
    def silent(sock: socket.socket, head: bytes) -> None:
        read_all(sock, timeout=3)

    with echo_server("fast") as fast, raw_upstream(silent) as slow:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f"""
[[proxy]]
prefix = "/fast"
upstreams = ["{fast.url}"]
preserve_host = true

[[proxy]]
prefix = "/slow"
upstreams = ["{slow.url}"]
upstream_timeout = 0.3
retries = 0
"""
        )
        gateway = start_gateway("-b", "127.0.0.1:0", "--config", str(config))
        doc = requests.get(gateway.url + "/fast/p", headers={"Host": "front"}, timeout=10).json()
        assert [v for k, v in doc["headers"] if k.lower() == "host"] == ["front"]
        assert requests.get(gateway.url + "/slow/p", timeout=10).status_code == 504
        assert gateway.stop() == 0
