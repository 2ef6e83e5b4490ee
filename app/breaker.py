"""Per-process circuit breakers for PostgreSQL and Redis.

After ``threshold`` consecutive failures (connection refused, pool/connect/command timeouts, OSError...)
a breaker *opens*: callers are refused at once (DB routes answer 503 with Retry-After, the login limiter
uses its per-process counters) instead of each waiting on a timeout. After ``open_s`` it lets exactly
one caller through as a *half-open probe* (others are still refused); the probe's success closes it, its
failure opens it again for another ``open_s``.

Per worker process on purpose: no shared state to fail along with the dependency, and each worker
learns about an outage from its own traffic within ``threshold`` requests.

Imports nothing heavy (no SQLAlchemy, redis-py or prometheus-client): a Lambda cold start loads it.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Gauge

log = logging.getLogger("app.breaker")


class State(IntEnum):
    """Gauge values: the higher, the worse (a multiprocess ``max`` shows the worst worker)."""

    closed = 0
    half_open = 1
    open = 2


class CircuitOpenError(Exception):
    """Refused without trying: the breaker of ``dependency`` is open (or its half-open probe is out)."""

    def __init__(self, dependency: str, retry_after: int) -> None:
        super().__init__(f"circuit breaker for {dependency} is open")
        self.dependency = dependency
        self.retry_after = retry_after


class CircuitBreaker:
    """Consecutive-failure breaker for one dependency. Not thread-safe: one event loop per process.

    ``acquire()`` before using the dependency (raises CircuitOpenError), then exactly one of
    ``success()``, ``failure()`` or ``release()`` (outcome says nothing about the dependency).
    """

    def __init__(
        self,
        name: str,
        threshold: int,
        open_s: float,
        *,
        on_change: Callable[[str, State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.open_s = open_s
        self._on_change = on_change
        self._clock = clock
        self._state = State.closed
        self._failures = 0
        self._opened_at = 0.0
        self._probe_out = False
        self._report(State.closed)

    @property
    def state(self) -> State:
        """Open becomes half-open once the interval has passed (reported on the next acquire)."""
        if self._state is State.open and self._clock() - self._opened_at >= self.open_s:
            return State.half_open
        return self._state

    def retry_after(self) -> int:
        """Whole seconds until a probe may be let through (at least 1, as Retry-After wants)."""
        left = self.open_s - (self._clock() - self._opened_at)
        return max(1, math.ceil(left))

    def acquire(self) -> bool:
        """May the caller use the dependency? True when it is the half-open probe (released by the
        outcome). Raises CircuitOpenError while open or while another probe is out."""
        if self._state is State.closed:
            return False
        if self._state is State.open:
            if self._clock() - self._opened_at < self.open_s:
                raise CircuitOpenError(self.name, self.retry_after())
            self._set(State.half_open)
        if self._probe_out:
            raise CircuitOpenError(self.name, 1)
        self._probe_out = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._probe_out = False
        if self._state is not State.closed:
            log.warning("circuit breaker closed", extra={"dependency": self.name})
            self._set(State.closed)

    def failure(self) -> None:
        self._failures += 1
        probe, self._probe_out = self._probe_out, False
        if probe or (self._state is State.closed and self._failures >= self.threshold):
            self._opened_at = self._clock()
            if self._state is not State.open:
                log.warning(
                    "circuit breaker opened",
                    extra={"dependency": self.name, "failures": self._failures, "open_s": self.open_s},
                )
            self._set(State.open)

    def release(self, probe: bool) -> None:
        """The caller finished without telling whether the dependency works (cancelled, or an unrelated
        error): free the probe slot so the next caller probes."""
        if probe:
            self._probe_out = False

    def _set(self, state: State) -> None:
        if state is not self._state:
            self._state = state
            self._report(state)

    def _report(self, state: State) -> None:
        if self._on_change is not None:
            try:
                self._on_change(self.name, state)
            except Exception:  # a metrics problem must never fail a request
                log.exception("circuit breaker metric update failed")


def prometheus_reporter() -> Callable[[str, State], None]:
    """``on_change`` that sets the gauge ``circuit_breaker_state{dependency}`` (0 closed, 1 half-open,
    2 open). Under gunicorn (PROMETHEUS_MULTIPROC_DIR) the scrape shows the worst live worker
    (``livemax``); dead workers' files are dropped by gunicorn_conf's child_exit."""
    gauge = _gauge()

    def report(name: str, state: State) -> None:
        gauge.labels(dependency=name).set(int(state))

    return report


@functools.cache
def _gauge() -> Gauge:
    """Created once per process (prometheus-client refuses a second registration of the name)."""
    from prometheus_client import Gauge

    return Gauge(
        "circuit_breaker_state",
        "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open",
        ["dependency"],
        multiprocess_mode="livemax",
    )
