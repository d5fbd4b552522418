"""The masking implementation (RFC 6455 §5.3) a test runs with: each in turn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thor.websocket.protocol import frames


@pytest.fixture(params=[frames.STDLIB, frames.ACCELERATOR])
def masking(request: pytest.FixtureRequest) -> Iterator[str]:
    """Mask with the standard library's code, then with the C accelerator; as it was after.

    The accelerator is websockets' ``speedups`` extension (a test dependency); where it cannot
    be loaded its run skips, saying so.
    """
    before = frames.masking
    wanted = request.param
    got = frames.use_accelerator(wanted == frames.ACCELERATOR)
    try:
        if got != wanted:
            pytest.skip("websockets' C speedups cannot be loaded here (pip install thor[speedups])")
        yield wanted
    finally:
        frames.use_accelerator(before == frames.ACCELERATOR)
