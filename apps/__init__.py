"""Example apps for thor-gateway (see docs/gateway.md): ``thor-gateway -c apps/gateway.toml``."""
