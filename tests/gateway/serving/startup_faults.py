"""Run thor-gateway with one startup step made to fail (for test_startup_failures.py).

``python -m tests.gateway.serving.startup_faults MODULE:QUALNAME [GATEWAY ARGS...]`` replaces the
function or method ``QUALNAME`` of ``MODULE`` with one that raises :class:`InjectedFault`
(also where another gateway module imported it by name), then runs the real command line.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


class InjectedFault(Exception):
    """The failure a test asked for."""


def inject(spec: str) -> None:
    module_name, _, qualname = spec.partition(":")
    owner: Any = importlib.import_module(module_name)
    path, _, attr = qualname.rpartition(".")
    for part in filter(None, path.split(".")):
        owner = getattr(owner, part)
    original = getattr(owner, attr)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise InjectedFault(f"injected at {spec}")

    setattr(owner, attr, failing)
    if not path:  # a function: the modules that imported it by name call it there
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "")
            if name.startswith("thor_gateway") and getattr(module, attr, None) is original:
                setattr(module, attr, failing)


if __name__ == "__main__":
    # Imported first, so that names they import from each other are replaced too.
    import thor_gateway.proxy
    import thor_gateway.serving.server
    import thor_gateway.serving.workers  # noqa: F401
    from thor_gateway.serving.cli import main

    inject(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
