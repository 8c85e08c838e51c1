"""A circuit breaker for one backing service.

Why: when Redis is down every call would otherwise wait for a socket timeout, so a burst of client
requests piles up coroutines holding sockets and the event loop spends its time on doomed I/O.
After ``failure_threshold`` consecutive failures the breaker *opens* and calls fail at once with
:class:`CircuitOpenError` (a :class:`ConnectionError`, which the core already maps to WS_5002).
After a backoff it lets exactly one probe through (*half-open*); a success closes it, a failure
opens it again with a longer backoff. Backoffs grow exponentially from ``base_backoff`` up to
``max_backoff`` and are jittered so that many instances do not probe a recovering Redis in step.

The breaker knows nothing about Redis or asyncio: the caller reports outcomes, and time and
randomness are injected so that tests drive it without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import Enum


class CircuitOpenError(ConnectionError):
    """Raised instead of calling a dependency the breaker considers down."""


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open after a backoff → closed on success."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        base_backoff: float = 0.5,
        max_backoff: float = 30.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < base_backoff <= max_backoff:
            raise ValueError("need 0 < base_backoff <= max_backoff")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.name = name
        self._threshold = failure_threshold
        self._base = base_backoff
        self._max = max_backoff
        self._jitter = jitter
        self._clock = clock
        self._rand = rand
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive failures while closed
        self._trips = 0  # consecutive openings without a success in between
        self._retry_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The state as of now: an open breaker whose backoff has passed reads as half-open."""
        if self._state is BreakerState.OPEN and self._clock() >= self._retry_at:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def retry_at(self) -> float:
        """Clock time from which the next probe is allowed (meaningful while open)."""
        return self._retry_at

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now.

        Half-open admits a single probe; other callers fail fast until it reports back, so a
        recovering Redis is not hit by the whole backlog at once.
        """
        if self._state is BreakerState.CLOSED:
            return
        if self._state is BreakerState.OPEN:
            if self._clock() < self._retry_at:
                raise CircuitOpenError(f"{self.name} circuit open")
            self._state = BreakerState.HALF_OPEN
        if self._probe_in_flight:
            raise CircuitOpenError(f"{self.name} circuit open (probe in flight)")
        self._probe_in_flight = True

    def record_success(self) -> None:
        """The dependency answered: close the breaker and forget past failures."""
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trips = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """The dependency did not answer (connection refused, timeout)."""
        if self._state is BreakerState.OPEN:
            # Calls already in flight when the breaker opened: they tell nothing new, and must
            # not push the backoff further out.
            return
        self._probe_in_flight = False
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures < self._threshold:
                return
        self._open()

    def record_abandoned(self) -> None:
        """The call ended without telling us anything (e.g. cancelled): free the probe slot."""
        self._probe_in_flight = False

    def _open(self) -> None:
        self._trips += 1
        self._failures = 0
        self._state = BreakerState.OPEN
        self._retry_at = self._clock() + self.backoff_for(self._trips)

    def backoff_for(self, trips: int) -> float:
        """Backoff after the ``trips``-th consecutive opening: base·2^(trips-1), capped, ±jitter."""
        exponent = min(trips - 1, 62)  # keep 2**exponent a sane float
        nominal = min(self._max, self._base * 2.0**exponent)
        spread = nominal * self._jitter
        return min(self._max, nominal - spread + 2 * spread * self._rand())
