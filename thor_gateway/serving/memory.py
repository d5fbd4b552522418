"""``--workers-max-rss``: a worker recycles itself once its resident memory passes a limit.

Theory of operation.  A worker reads its resident set size from
``/proc/self/statm`` (the second field, in pages: one small read, no parsing of
``/proc/self/status``) about once a second, from its loop.  Past the limit it logs
the size and drains, exactly as after ``--max-requests``: requests in flight
finish, the master starts a replacement.  Each worker adds a random part of
a second to every interval, so that workers started together, whose memory
grows alike, neither sample nor recycle in step (granian's ``--workers-max-rss``
does the same with its sample interval).

Where ``/proc`` is missing (not Linux), the watch logs once and stops.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

__all__ = ["rss_bytes", "watch_rss"]

log = logging.getLogger("thor_gateway.workers")
INTERVAL = 1.0  # seconds between samples, plus up to JITTER
JITTER = 1.0
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """This process's resident set size; raises ``OSError`` where there is no /proc."""
    with open("/proc/self/statm", "rb") as file:
        return int(file.read().split()[1]) * PAGE


def watch_rss(gateway: Any, limit_mib: int) -> None:
    """Sample the RSS on ``gateway``'s loop; drain it once past ``limit_mib`` MiB."""
    loop = gateway.loop

    def sample() -> None:
        if gateway.draining:
            return
        try:
            size = rss_bytes()
        except (OSError, ValueError, IndexError) as error:
            log.warning("--workers-max-rss: cannot read the memory size (%s); not watching", error)
            return
        if size > limit_mib * MIB:
            log.info(
                "resident memory %.1f MiB is over --workers-max-rss %d MiB: recycling this worker",
                size / MIB,
                limit_mib,
            )
            gateway.drain()
            return
        loop.schedule(INTERVAL + random.random() * JITTER, sample)

    loop.schedule(INTERVAL + random.random() * JITTER, sample)
