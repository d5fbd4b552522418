"""Thor: evented HTTP intermediation for Python (library ``thor`` and server ``thor_gateway``)."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="thor",
    version="1.0.0.dev0",
    description="Evented HTTP/1.1 library and server for proxies, gateways and WSGI/ASGI apps",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["thor", "thor.*", "thor_gateway", "thor_gateway.*"]),
    package_data={"thor": ["py.typed"], "thor_gateway": ["py.typed", "operations/status.html"]},
    install_requires=[],  # the runtime needs only the standard library
    extras_require={
        # Optional C masking for WebSocket payloads (RFC 6455 §5.3): websockets' speedups
        # extension, loaded alone (not the package) when installed; the stdlib path otherwise.
        # 10.4 is its first release validated on Python 3.11 (docs/websocket.md, "Speed").
        "speedups": ["websockets>=10.4"],
        "test": [
            "pytest>=8",
            "pytest-xdist",  # the suite runs on 2 cores in well under 10 minutes
            "pytest-timeout",  # no test may hang the suite
            "hypothesis",  # property tests of the sans-IO parser
            "trustme",  # TLS certificates generated inside tests
            "h2",  # an independent HTTP/2 peer and HPACK oracle; the client of the serving tests
            "kosoku",  # the Autobahn WebSocket cases (tests/websocket/test_autobahn.py)
            # An independent WebSocket peer (the proxy's relay, the websocket scope), and the
            # C masking of the speedups extra, whose tests run both masking paths.
            "websockets>=10.4",
            "starlette",  # real framework WebSocket endpoints behind the gateway
            "fastapi",  # the same, FastAPI's way (path parameters, JSON helpers)
            "requests",
            "werkzeug",
            "flask",  # a real framework behind the gateway
            "django",  # its collected admin static files served by --static
            "grpcio",  # a real gRPC server and client through the proxy (apps/grpc_proxy.py)
            "channels",  # Django Channels consumers over the gateway's websocket scope
            "ruff",
            "mypy",
        ],
    },
    entry_points={"console_scripts": ["thor-gateway = thor_gateway.serving.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
    ],
)
