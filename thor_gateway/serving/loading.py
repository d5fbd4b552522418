"""Import an app from its spec, tell its interface, and wrap it in a handler.

App specs (gunicorn's and uvicorn's spellings):

- ``module:attr`` (``attr`` may be dotted: ``pkg.web:site.app``); ``module``
  alone means ``module:app``;
- ``module:factory()`` or ``module:factory('prod', debug=False)``: the
  arguments are Python literals (read with :func:`ast.literal_eval`, never
  evaluated as code);
- ``--factory``: call the named object with no arguments.

Interface detection (``--interface auto``), first rule that matches:

1. an object with ``handle``, ``startup`` and ``shutdown`` methods is already a
   gateway handler and is used as it is;
2. an object marked with :func:`native_app` is a native Thor app;
3. a coroutine function, or an object whose ``__call__`` is one, is ASGI 3;
4. a callable taking exactly one positional argument is a native Thor app
   (``app(exchange)``); one taking two is WSGI (``app(environ, start_response)``);
5. anything else is refused with a message asking for ``--interface``.

Rule 4 reads the signature, which a C callable or a ``*args`` wrapper may hide;
``--interface`` (or the decorator) settles those cases.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from thor_gateway.serving.config_values import ConfigError

if TYPE_CHECKING:
    from thor_gateway.serving.config import Settings, StaticRoute

__all__ = ["AppLoadError", "detect_interface", "import_app", "native_app", "parse_spec"]

F = TypeVar("F", bound=Callable[..., Any])
NATIVE_MARK = "__thor_gateway_interface__"


class AppLoadError(Exception):
    """An app could not be imported or built; ``where`` names the mount or setting."""

    exit_status = 2

    def __init__(self, where: str, problem: str, summary: str = "") -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem
        # One line for a log that reports it from afar (the master, about a worker).
        self.summary = summary or f"{where}: {problem.partition(chr(10))[0]}"


def native_app(app: F) -> F:
    """Mark ``app`` as a native Thor app: ``app(exchange)`` attaches its listeners."""
    setattr(app, NATIVE_MARK, "thor")
    return app


def parse_spec(spec: str) -> tuple[str, str, tuple[Any, ...] | None, dict[str, Any]]:
    """``"mod:f(1, a=2)"`` -> ``("mod", "f", (1,), {"a": 2})``; args None when not a call."""
    module, _, attr = spec.strip().partition(":")
    attr = attr or "app"
    if module.endswith(".py") or "/" in module:  # a file name where a module name goes
        dotted = module.removesuffix(".py").removeprefix("./").replace("/", ".")
        raise AppLoadError(spec, f"give a module, not a file: {dotted}:{attr}")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise AppLoadError(spec, "expected MODULE:APP (e.g. myproject.web:app)")
    if "(" not in attr:
        if not all(part.isidentifier() for part in attr.split(".")):
            raise AppLoadError(spec, f"{attr!r} is not an attribute name")
        return module, attr, None, {}
    try:
        call = ast.parse(attr, mode="eval").body
        if not isinstance(call, ast.Call):
            raise ValueError("not a call")
        name = ast.unparse(call.func)
        args = tuple(ast.literal_eval(a) for a in call.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError) as error:
        raise AppLoadError(
            spec, f"a factory call takes literal arguments only: module:factory('x', n=1) ({error})"
        ) from None
    if not all(part.isidentifier() for part in name.split(".")):
        raise AppLoadError(spec, f"{name!r} is not an attribute name")
    return module, name, args, kwargs


def import_app(spec: str, factory: bool = False) -> Any:
    """Import the object ``spec`` names (calling it when it is a factory)."""
    module_name, attr, args, kwargs = parse_spec(spec)
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: apps in the working directory
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise AppLoadError(spec, f"no module named {error.name!r}") from None
        raise _failure(spec, "importing", module_name, error) from None
    except Exception as error:
        raise _failure(spec, "importing", module_name, error) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(spec, f"module {module_name!r} has no attribute {attr!r}") from None
    if args is None and factory:
        args = ()
    if args is not None:
        if not callable(obj):
            raise AppLoadError(spec, f"{attr!r} is not callable, so it cannot be a factory")
        try:
            obj = obj(*args, **kwargs)
        except Exception as error:
            raise _failure(spec, "calling the factory", attr, error) from None
    return obj


def _failure(spec: str, doing: str, what: str, error: BaseException) -> AppLoadError:
    """The user's error with the user's frames only (Thor's and importlib's are noise)."""
    report = traceback.TracebackException.from_exception(error)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if not _is_ours(frame.filename)]
    )
    text = "".join(report.format()).rstrip()
    if isinstance(error, SyntaxError):
        where = f" ({error.filename}, line {error.lineno})"
        line = f"{type(error).__name__}: {error.msg}{where}"
    else:
        last = report.stack[-1] if report.stack else None
        where = f" ({last.filename}, line {last.lineno})" if last else ""
        line = f"{type(error).__name__}: {error}{where}"
    return AppLoadError(spec, f"{doing} {what} failed:\n{text}", f"{spec}: {line}")


_THOR_GATEWAY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__ or ""))


def _is_ours(filename: str) -> bool:
    """A frame of the gateway or of the import machinery, not of the user's app."""
    if filename.startswith("<frozen importlib"):
        return True
    path = os.path.abspath(filename)
    return path.startswith((_THOR_GATEWAY + os.sep, _IMPORTLIB + os.sep))


def is_handler(obj: Any) -> bool:
    """Whether ``obj`` already implements the gateway's handler interface."""
    return all(callable(getattr(obj, name, None)) for name in ("handle", "startup", "shutdown"))


def detect_interface(obj: Any, where: str = "app") -> str:
    """``"handler"``, ``"thor"``, ``"asgi"`` or ``"wsgi"`` (rules in the module docstring)."""
    if is_handler(obj):
        return "handler"
    if getattr(obj, NATIVE_MARK, None) == "thor":
        return "thor"
    if not callable(obj):
        raise AppLoadError(where, f"{obj!r} is not callable: not a WSGI, ASGI or Thor app")
    call = getattr(obj, "__call__", None)  # noqa: B004 - we need the method itself
    if inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        params = None
    if params is not None:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        positional = [p for p in params if p.kind in kinds]
        variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        if not variadic and len(positional) == 1:
            return "thor"
        if not variadic and len(positional) == 2:
            return "wsgi"
    raise AppLoadError(
        where,
        f"cannot tell the interface of {obj!r}; say it with --interface wsgi|asgi|thor "
        "(or interface = ... in its [[mount]] table)",
    )


def build_handler(
    obj: Any,
    interface: str,
    *,
    loop: Any,
    threads: int,
    max_queue: int,
    lifespan: str,
    buffer_input: bool = True,
    input_memory: int = 1024 * 1024,
    multiprocess: bool = False,
    where: str = "app",
) -> Any:
    """Wrap an imported app in its adapter (imported here, on first use)."""
    if interface == "auto":
        interface = detect_interface(obj, where)
    if interface == "handler":
        return obj
    if interface == "wsgi":
        return _adapter("hosting.wsgi", "WsgiHandler", where)(
            obj,
            threads=threads,
            max_queue=max_queue,
            loop=loop,
            multiprocess=multiprocess,
            buffer_input=buffer_input,
            input_memory=input_memory,
        )
    if interface == "asgi":
        return _adapter("hosting.asgi", "AsgiHandler", where)(obj, loop=loop, lifespan=lifespan)
    if interface == "thor":
        return _adapter("hosting.native", "NativeHandler", where)(obj)
    raise AppLoadError(where, f"unknown interface {interface!r}")


def _adapter(module: str, name: str, where: str) -> Any:
    try:
        return getattr(importlib.import_module(f"thor_gateway.{module}"), name)
    except (ImportError, AttributeError):
        adapter = module.rpartition(".")[2]
        raise AppLoadError(where, f"the {adapter} adapter is not available") from None


def build_proxy(upstreams: tuple[Any, ...], options: dict[str, Any], *, loop: Any) -> Any:
    """The proxy handler of a ``[[proxy]]`` route (module owned by the proxy)."""
    proxy_handler = _adapter("proxy", "ProxyHandler", "proxy")
    try:
        return proxy_handler(list(upstreams), loop=loop, **options)
    except (TypeError, ValueError) as error:  # unknown setting / bad value or URL
        raise AppLoadError("proxy", str(error)) from None


def static_handler(route: StaticRoute) -> Any:
    """The handler of a ``--static`` / ``[[static]]`` route."""
    from thor_gateway.static import StaticHandler

    try:
        return StaticHandler(
            route.path,
            cache_control=route.cache_control,
            follow_symlinks=route.follow_symlinks,
            index=route.index,
            precompressed=route.precompressed,
        )
    except OSError as error:
        raise ConfigError("static", f"{route.prefix}={route.path}: {error}") from None


def websocket_options(s: Settings) -> dict[str, Any]:
    """The ``--ws-*`` settings as ``thor.websocket.accept``'s keyword arguments."""
    return {
        "max_message_size": s.ws_max_size or None,
        "ping_interval": s.ws_ping_interval or None,
        "ping_timeout": s.ws_ping_timeout or None,
        "close_timeout": s.ws_close_timeout,
        "deflate": s.ws_per_message_deflate,
    }
