"""App specs and interface detection (thor_gateway.serving.loading)."""

from __future__ import annotations

from typing import Any

import pytest

from thor_gateway import native_app
from thor_gateway.serving.loading import AppLoadError, detect_interface, import_app, parse_spec


def wsgi(environ: Any, start_response: Any) -> list[bytes]:
    return []


async def asgi(scope: Any, receive: Any, send: Any) -> None:
    return None


class AsgiClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


class WsgiClass:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


def native(exchange: Any) -> None:
    return None


@native_app
def marked(*args: Any) -> None:
    return None


class Handler:
    def handle(self, exchange: Any, request: Any) -> None: ...
    def startup(self, done: Any) -> None: ...
    def shutdown(self, done: Any) -> None: ...


@pytest.mark.parametrize(
    ("obj", "interface"),
    [
        (wsgi, "wsgi"),
        (WsgiClass(), "wsgi"),
        (asgi, "asgi"),
        (AsgiClass(), "asgi"),
        (native, "thor"),
        (marked, "thor"),
        (Handler(), "handler"),
    ],
)
def test_detect(obj: Any, interface: str) -> None:
    assert detect_interface(obj) == interface


@pytest.mark.parametrize("obj", [lambda *a: None, lambda a, b, c: None, 3, print])
def test_undecidable_asks_for_interface(obj: Any) -> None:
    with pytest.raises(AppLoadError, match=r"interface|not callable"):
        detect_interface(obj)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("a.b:c", ("a.b", "c", None, {})),
        ("a.b", ("a.b", "app", None, {})),
        ("a:b.c", ("a", "b.c", None, {})),
        ("a:make()", ("a", "make", (), {})),
        ("a:make('x', n=2, flag=True)", ("a", "make", ("x",), {"n": 2, "flag": True})),
    ],
)
def test_specs(spec: str, parsed: tuple[Any, ...]) -> None:
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["", ":app", "a-b:c", "a:b-c", "a:make(os.system('x'))", "a:1()"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(AppLoadError):
        parse_spec(spec)


def test_import_and_factories() -> None:
    app = import_app("tests.gateway.gateway_apps:named('zed')")
    assert callable(app)
    assert import_app("tests.gateway.gateway_apps:create_app", factory=True).__name__ == "app"
    with pytest.raises(AppLoadError, match="no attribute"):
        import_app("tests.gateway.gateway_apps:missing")
