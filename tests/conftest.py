"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import thor.loop


@pytest.fixture
def loop() -> Iterator[thor.loop.Loop]:
    """A new loop; run it with ``thor.testing.run_for(loop, seconds)``."""
    the_loop = thor.loop.make()
    the_loop.fatal_errors = True  # a failing listener fails the test
    yield the_loop
    the_loop.close()
