"""Building proxy handlers from CLI flags and [[proxy]] tables."""

from __future__ import annotations

import tomllib

import pytest

from thor_gateway.aggregation.transform import Gzip
from thor_gateway.proxy import ProxyHandler, handler_from_config, settings_from_flags
from thor_gateway.proxy.balancer import ConsistentHash, SmoothWeighted

TOML = """
[[proxy]]
prefix = "/api"
upstreams = [
  { url = "http://127.0.0.1:8001/v1", weight = 3, max_connections = 50 },
  "http://127.0.0.1:8002/v1",
]
balancer = "consistent_hash"
hash_key = "cookie:session"
upstream_timeout = 12.5
preserve_host = true
health_check_path = "/healthz"
health_check_interval = 2
fail_statuses = [502, 503]
via = "edge"
gzip = true

[[proxy]]
upstream = "http://127.0.0.1:9000"
balancer = "weighted"
"""


def test_handlers_from_toml_tables() -> None:
    tables = tomllib.loads(TOML)["proxy"]
    defaults = settings_from_flags(upstream_connect_timeout=1.5, upstream_timeout=20)
    api = handler_from_config(tables[0], defaults=defaults)
    assert isinstance(api.balancer, ConsistentHash)
    s = api.settings
    assert (s.connect_timeout, s.upstream_timeout, s.preserve_host) == (1.5, 12.5, True)
    assert s.fail_statuses == frozenset({502, 503})
    assert s.via == b"edge"
    assert any(isinstance(t, Gzip) for t in api.transforms)
    assert api.health is not None
    assert api.health.path == "/healthz"
    first, second = api.upstreams.members
    assert (first.weight, first.target.max_connections, first.target.base_path) == (3, 50, b"/v1")
    assert second.target.port == 8002
    assert api.client.read_timeout == 12.5
    assert api.client.connect_timeout == 1.5
    other = handler_from_config(tables[1], defaults=defaults)
    assert isinstance(other.balancer, SmoothWeighted)
    assert other.settings.upstream_timeout == 20.0


def test_bad_tables_and_flags() -> None:
    assert settings_from_flags() == {}
    with pytest.raises(ValueError, match="needs upstreams"):
        handler_from_config({"prefix": "/x"})
    with pytest.raises(TypeError, match="unknown proxy settings: colour"):
        handler_from_config({"upstreams": ["http://127.0.0.1:1"], "colour": "red"})
    with pytest.raises(ValueError, match="unknown balancer"):
        ProxyHandler(["http://127.0.0.1:1"], balancer="fastest")
    with pytest.raises(ValueError, match="bad hash key"):
        ProxyHandler(["http://127.0.0.1:1"], hash_key="query:x")
