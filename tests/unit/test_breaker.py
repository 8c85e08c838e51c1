"""The circuit breaker, and the Redis guard that applies it. Time is injected: nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.exceptions as redis_errors

from collabgate.ops.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from collabgate.ops.metrics import Metrics
from collabgate.ops.redis_support import RedisGuard, RedisStartupError, create_redis, redact_url
from collabgate.settings import SettingsError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: FakeClock, *, rand: float = 0.5, **kwargs: Any) -> CircuitBreaker:
    options: dict[str, Any] = {
        "failure_threshold": 3,
        "base_backoff": 1.0,
        "max_backoff": 8.0,
        "jitter": 0.2,
    }
    options.update(kwargs)
    return CircuitBreaker("redis", clock=clock, rand=lambda: rand, **options)


def state(b: CircuitBreaker) -> BreakerState:
    """Read through a call, so the type checker does not carry narrowing across state changes."""
    return b.state


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        b.before_call()
        b.record_failure()


# --------------------------------------------------------------------------- breaker
def test_starts_closed_and_lets_calls_through() -> None:
    b = breaker(FakeClock())
    assert state(b) is BreakerState.CLOSED
    b.before_call()
    b.record_success()


def test_opens_after_threshold_consecutive_failures() -> None:
    b = breaker(FakeClock())
    fail(b, 2)
    assert state(b) is BreakerState.CLOSED
    fail(b, 1)
    assert state(b) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match="redis circuit open"):
        b.before_call()


def test_a_success_resets_the_failure_count() -> None:
    b = breaker(FakeClock())
    fail(b, 2)
    b.before_call()
    b.record_success()
    fail(b, 2)
    assert state(b) is BreakerState.CLOSED


def test_open_error_is_a_connection_error_so_the_core_maps_it_to_service_unavailable() -> None:
    assert issubclass(CircuitOpenError, ConnectionError)


def test_half_open_after_backoff_admits_a_single_probe() -> None:
    clock = FakeClock()
    b = breaker(clock, rand=0.5)  # jitter centred: backoff exactly 1.0 s
    fail(b, 3)
    clock.now += 0.999
    with pytest.raises(CircuitOpenError):
        b.before_call()
    clock.now += 0.001
    assert state(b) is BreakerState.HALF_OPEN
    b.before_call()  # the probe
    with pytest.raises(CircuitOpenError, match="probe in flight"):
        b.before_call()


def test_successful_probe_closes() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 1.0
    b.before_call()
    b.record_success()
    assert state(b) is BreakerState.CLOSED
    b.before_call()
    b.before_call()  # no probe limit once closed


def test_failed_probe_reopens_with_exponentially_growing_backoff_up_to_the_cap() -> None:
    clock = FakeClock()
    b = breaker(clock, rand=0.5)
    fail(b, 3)
    waits = []
    for _ in range(6):
        waits.append(b.retry_at - clock.now)
        clock.now = b.retry_at
        fail(b, 1)  # the probe fails: straight back to open, no threshold
        assert state(b) is BreakerState.OPEN
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_failures_of_calls_in_flight_when_it_opened_do_not_lengthen_the_backoff() -> None:
    clock = FakeClock()
    b = breaker(clock, rand=0.5)
    for _ in range(50):  # 50 concurrent calls went out while closed
        b.before_call()
    for _ in range(50):
        b.record_failure()
    assert b.retry_at - clock.now == 1.0


def test_after_recovery_the_backoff_starts_small_again() -> None:
    clock = FakeClock()
    b = breaker(clock, rand=0.5)
    fail(b, 3)
    clock.now = b.retry_at
    fail(b, 1)
    clock.now = b.retry_at
    b.before_call()
    b.record_success()
    fail(b, 3)
    assert b.retry_at - clock.now == 1.0


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 3.2), (1.0, 4.8)])
def test_jitter_spreads_the_backoff_both_ways(rand: float, expected: float) -> None:
    b = breaker(FakeClock(), rand=rand)
    assert b.backoff_for(3) == pytest.approx(expected)  # nominal 4 s ± 20 %


def test_jitter_never_exceeds_the_cap() -> None:
    b = breaker(FakeClock(), rand=1.0)
    assert b.backoff_for(50) == 8.0


def test_an_abandoned_probe_frees_the_slot() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    b.before_call()
    b.record_abandoned()
    b.before_call()  # another probe may go


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0}, {"base_backoff": 0}, {"base_backoff": 9.0}, {"jitter": 1.0}],
)
def test_rejects_nonsense_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message names its own setting
        breaker(FakeClock(), **kwargs)


# --------------------------------------------------------------------------- the Redis guard
def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def raising(exc: BaseException) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        raise exc

    return call


async def answer() -> str:
    return "PONG"


async def test_guard_times_each_call_and_marks_redis_up() -> None:
    metrics = Metrics()
    guard = RedisGuard(metrics)
    assert await guard.run("lock_acquire", answer) == "PONG"
    count = sample(metrics, "redis_operation_duration_seconds_count", operation="lock_acquire")
    assert count == 1
    assert sample(metrics, "collabgate_dependency_up", dependency="redis") == 1


@pytest.mark.parametrize(
    "error",
    [
        redis_errors.ConnectionError("refused"),
        redis_errors.TimeoutError("slow"),
        redis_errors.ReadOnlyError("READONLY failover"),
    ],
)
async def test_guard_turns_redis_outages_into_connection_errors(
    error: redis_errors.RedisError,
) -> None:
    metrics = Metrics()
    guard = RedisGuard(metrics)
    await guard.run("ping", answer)
    with pytest.raises(ConnectionError, match="redis unavailable during presence_add"):
        await guard.run("presence_add", raising(error))
    assert sample(metrics, "collabgate_dependency_failures_total", dependency="redis") == 1
    assert sample(metrics, "collabgate_dependency_up", dependency="redis") == 0
    await guard.run("ping", answer)
    assert sample(metrics, "collabgate_dependency_up", dependency="redis") == 1


async def test_guard_lets_other_redis_errors_through_unchanged() -> None:
    metrics = Metrics()
    guard = RedisGuard(metrics)
    with pytest.raises(redis_errors.ResponseError):
        await guard.run("lock_release", raising(redis_errors.ResponseError("WRONGTYPE")))
    assert sample(metrics, "collabgate_dependency_failures_total", dependency="redis") == 0


async def test_guard_fails_fast_while_the_breaker_is_open() -> None:
    clock = FakeClock()
    guard = RedisGuard(Metrics(), breaker(clock))
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await guard.run("ping", raising(redis_errors.ConnectionError("refused")))
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "PONG"

    with pytest.raises(CircuitOpenError):
        await guard.run("ping", counted)
    assert calls == 0, "an open breaker must not touch the network"
    clock.now += 10
    assert await guard.run("ping", counted) == "PONG"
    assert guard.breaker is not None
    assert guard.breaker.state is BreakerState.CLOSED


async def test_guard_frees_the_probe_when_the_call_is_cancelled() -> None:
    clock = FakeClock()
    b = breaker(clock)
    guard = RedisGuard(None, b)
    fail(b, 3)
    clock.now += 10
    with pytest.raises(asyncio.CancelledError):
        await guard.run("ping", raising(asyncio.CancelledError()))
    assert await guard.run("ping", answer) == "PONG"


# --------------------------------------------------------------------------- client factory
async def test_unreachable_redis_stops_startup_naming_the_variable() -> None:
    with pytest.raises(RedisStartupError, match="COLLABGATE_REDIS_URL: cannot reach Redis") as info:
        await create_redis("redis://:s3cret@127.0.0.1:1/0", socket_connect_timeout=0.5)
    assert "s3cret" not in str(info.value)
    assert isinstance(info.value, SettingsError)


async def test_malformed_url_stops_startup_naming_the_variable() -> None:
    with pytest.raises(RedisStartupError, match="COLLABGATE_REDIS_URL: invalid Redis URL"):
        await create_redis("http://127.0.0.1:6379")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6380/2", "redis://:***@host:6380/2"),
        ("rediss://app:pw@cache.example:6379", "rediss://app:***@cache.example:6379"),
        ("redis://host", "redis://host"),
    ],
)
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
