"""Upstream health: active checks (probe a path) and passive ejection (watch real traffic).

Theory of operation: two independent verdicts gate an upstream; it takes traffic only when
both allow it.

- :class:`HealthTracker` is the *active* verdict.  A probe result moves a counter; the state
  flips DOWN after ``fall`` consecutive failures and UP after ``rise`` consecutive
  successes (the hysteresis HAProxy and nginx use, so one lost probe does not flap).
- :class:`PassiveEjection` is the *passive* verdict, from the outcome of proxied requests:
  ``max_fails`` consecutive failures eject the upstream for ``eject_time`` seconds; then it
  is on PROBATION (it takes traffic again); a success there restores it, a failure ejects
  it again for twice as long, up to ``max_eject_time`` (Envoy's outlier detection, simplified).
- :class:`ActiveHealthChecker` does the IO: every ``interval`` it sends ``GET path`` to each
  member of an upstream set with the evented client and feeds the trackers.

The two state machines are tables (state, event) -> state; what a transition does besides
changing state is in the method that applies it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import thor.loop

if TYPE_CHECKING:
    from thor_gateway.proxy.upstreams import Upstream, UpstreamSet

__all__ = [
    "ActiveHealthChecker",
    "Ejection",
    "Health",
    "HealthTracker",
    "PassiveEjection",
]

log = logging.getLogger("thor_gateway.health")


class Health(enum.Enum):
    UP = "up"
    DOWN = "down"


# (state, probe succeeded) -> state once the threshold for that direction is reached.
_HEALTH_FLIP: dict[tuple[Health, bool], Health] = {
    (Health.UP, False): Health.DOWN,
    (Health.DOWN, True): Health.UP,
}


class HealthTracker:
    """The active-check verdict with rise/fall thresholds."""

    __slots__ = ("fall", "rise", "state", "streak")

    def __init__(self, *, rise: int = 2, fall: int = 3, initial: Health = Health.UP) -> None:
        if rise < 1 or fall < 1:
            raise ValueError("rise and fall must be at least 1")
        self.rise = rise
        self.fall = fall
        self.state = initial
        self.streak = 0  # consecutive results that disagree with the state

    @property
    def up(self) -> bool:
        return self.state is Health.UP

    def observe(self, ok: bool) -> bool:
        """Record one probe result; True when the state changed."""
        target = _HEALTH_FLIP.get((self.state, ok))
        if target is None:  # the result agrees with the state
            self.streak = 0
            return False
        self.streak += 1
        if self.streak < (self.rise if ok else self.fall):
            return False
        self.state = target
        self.streak = 0
        return True


class Ejection(enum.Enum):
    IN_SERVICE = "in service"
    EJECTED = "ejected"
    PROBATION = "probation"


# (state, event) -> state; events: "failure" (threshold reached), "success", "expired".
_EJECTION: dict[tuple[Ejection, str], Ejection] = {
    (Ejection.IN_SERVICE, "failure"): Ejection.EJECTED,
    (Ejection.IN_SERVICE, "success"): Ejection.IN_SERVICE,
    (Ejection.EJECTED, "expired"): Ejection.PROBATION,
    # Requests already in flight when it was ejected may still report.
    (Ejection.EJECTED, "failure"): Ejection.EJECTED,
    (Ejection.EJECTED, "success"): Ejection.EJECTED,
    (Ejection.PROBATION, "failure"): Ejection.EJECTED,
    (Ejection.PROBATION, "success"): Ejection.IN_SERVICE,
}


class PassiveEjection:
    """Eject an upstream after consecutive failures of real requests; back-off on relapse."""

    __slots__ = (
        "base_time",
        "eject_time",
        "ejections",
        "fails",
        "max_eject_time",
        "max_fails",
        "state",
        "until",
    )

    def __init__(
        self, *, max_fails: int = 3, eject_time: float = 10.0, max_eject_time: float = 300.0
    ) -> None:
        self.max_fails = max_fails  # 0 turns passive ejection off
        self.base_time = eject_time
        self.eject_time = eject_time
        self.max_eject_time = max_eject_time
        self.state = Ejection.IN_SERVICE
        self.fails = 0
        self.until = 0.0
        self.ejections = 0  # times ejected, ever (the status page shows it)

    def admits(self, now: float) -> bool:
        """May a request go to this upstream now?"""
        if self.state is Ejection.EJECTED:
            if now < self.until:
                return False
            self.state = _EJECTION[(self.state, "expired")]
        return True

    def success(self) -> None:
        self.fails = 0
        new = _EJECTION[(self.state, "success")]
        if self.state is Ejection.PROBATION and new is Ejection.IN_SERVICE:
            self.eject_time = self.base_time
        self.state = new

    def failure(self, now: float) -> None:
        if not self.max_fails:
            return
        self.fails += 1
        relapse = self.state is Ejection.PROBATION
        if not relapse and self.fails < self.max_fails:
            return
        new = _EJECTION[(self.state, "failure")]
        if new is Ejection.EJECTED and self.state is not Ejection.EJECTED:
            if relapse:
                self.eject_time = min(self.eject_time * 2, self.max_eject_time)
            self.until = now + self.eject_time
            self.ejections += 1
            log.warning("upstream ejected for %.1fs after %d failures", self.eject_time, self.fails)
        self.state = new
        self.fails = 0


class ActiveHealthChecker:
    """Probe every member of ``upstreams`` with ``GET path`` every ``interval`` seconds.

    A probe succeeds when a complete response with a status in ``expect`` arrives within
    ``timeout``.  ``client`` is a :class:`thor.HttpClient` (the proxy's own, so probes reuse
    its pooled connections).
    """

    def __init__(
        self,
        upstreams: UpstreamSet,
        client: Any,
        *,
        loop: thor.loop.Loop,
        path: str = "/",
        interval: float = 5.0,
        timeout: float = 2.0,
        expect: Callable[[int], bool] = lambda status: 200 <= status < 400,
    ) -> None:
        self.upstreams = upstreams
        self.client = client
        self.loop = loop
        self.path = path if path.startswith("/") else "/" + path
        self.interval = interval
        self.timeout = timeout
        self.expect = expect
        self._timer: thor.loop.ScheduledEvent | None = None
        self.probes_sent = 0

    def start(self) -> None:
        """Probe now, then every ``interval``."""
        if self._timer is None:
            self._timer = self.loop.schedule(0, self._round)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.delete()
            self._timer = None

    def _round(self) -> None:
        for member in list(self.upstreams.members):
            self.probe(member)
        self._timer = self.loop.schedule(self.interval, self._round)

    def probe(self, member: Upstream, done: Callable[[bool], None] | None = None) -> None:
        """Send one probe to ``member``; feed its tracker (then ``done(ok)``)."""
        self.probes_sent += 1
        exchange = self.client.exchange()
        status = [0]
        finished = [False]

        def finish(ok: bool) -> None:
            if finished[0]:
                return
            finished[0] = True
            timer.delete()
            if member.health.observe(ok):
                log.warning("upstream %s is now %s", member.origin, member.health.state.value)
            if done is not None:
                done(ok)

        def on_timeout() -> None:
            exchange.cancel()
            finish(False)

        def on_start(code: bytes, phrase: bytes, headers: list[tuple[bytes, bytes]]) -> None:
            status[0] = int(code)

        timer = self.loop.schedule(self.timeout, on_timeout)
        exchange.on("response_start", on_start)
        exchange.on("response_done", lambda trailers: finish(self.expect(status[0])))
        exchange.on("error", lambda err: finish(False))
        exchange.request_start(
            b"GET", (member.origin + self.path).encode("ascii"), [(b"Host", member.authority)]
        )
        exchange.request_done([])
