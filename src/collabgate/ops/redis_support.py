"""What every Redis adapter shares: the client factory and the guard around each call.

Why one guard for all adapters: locks, presence and sessions talk to the same Redis, so they share
one view of its health (the ``collabgate_dependency_up{dependency="redis"}`` gauge and one
:class:`~collabgate.ops.breaker.CircuitBreaker`), and every call is timed under a small fixed set
of operation names so the histogram's label set stays bounded.

Deployment assumption: the adapters' Lua scripts touch keys they compute from their arguments
(e.g. a lock's resource hash while sweeping the global expiry index), which needs a single-shard
Redis: standalone, primary/replica, Sentinel, or ElastiCache with cluster mode *disabled*.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final, Literal, TypeVar, get_args
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from prometheus_client import Histogram
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from collabgate.ops.breaker import CircuitBreaker
from collabgate.ops.metrics import Metrics
from collabgate.settings import SettingsError

T = TypeVar("T")

REDIS_URL_VARIABLE: Final = "COLLABGATE_REDIS_URL"

#: Every value the ``operation`` label of ``redis_operation_duration_seconds`` can take.
Operation = Literal[
    "ping",
    "lock_acquire",
    "lock_extend",
    "lock_release",
    "lock_list",
    "lock_held_by",
    "lock_pop_expired",
    "presence_add",
    "presence_remove",
    "presence_members",
    "presence_heartbeat",
    "presence_reap",
    "session_open",
    "session_touch",
    "session_close",
    "session_count",
]
OPERATIONS: Final[tuple[str, ...]] = get_args(Operation)

#: Redis failures that mean "Redis is not there" (as opposed to a bug in a command). READONLY is
#: what a demoted primary answers during a failover, so it counts as unavailability too.
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
)


class RedisStartupError(SettingsError):
    """Redis cannot be used at start-up; the message names COLLABGATE_REDIS_URL.

    A :class:`SettingsError` so the CLI reports it like any other bad configuration (exit 2).
    """


class RedisGuard:
    """Times each Redis call, tracks Redis health in metrics, and applies the circuit breaker.

    Redis-level connection failures and timeouts are re-raised as the built-in
    :class:`ConnectionError`, which the gateway core maps to WS_5002 SERVICE_UNAVAILABLE; other
    Redis errors (a script bug, a wrong type) propagate unchanged and stay internal errors.
    """

    def __init__(
        self, metrics: Metrics | None = None, breaker: CircuitBreaker | None = None
    ) -> None:
        self._metrics = metrics
        self._breaker = breaker
        self._timers: dict[str, Histogram] = {}
        if metrics is not None:
            # Children created once: no label lookup per call, and every series exists from 0.
            self._timers = {op: metrics.redis_operation_duration.labels(op) for op in OPERATIONS}

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    async def run(self, operation: Operation, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` (a zero-argument coroutine factory) as one observed Redis operation."""
        if self._breaker is not None:
            self._breaker.before_call()  # raises CircuitOpenError without touching the network
        started = time.perf_counter()
        try:
            result = await call()
        except _UNAVAILABLE as exc:
            self._observe(operation, started)
            self._failed()
            raise ConnectionError(f"redis unavailable during {operation}: {exc}") from exc
        except redis_errors.RedisError:
            self._observe(operation, started)
            self._succeeded()  # Redis answered, even if with an error: it is up
            raise
        except BaseException:
            if self._breaker is not None:
                self._breaker.record_abandoned()
            raise
        self._observe(operation, started)
        self._succeeded()
        return result

    def _observe(self, operation: str, started: float) -> None:
        timer = self._timers.get(operation)
        if timer is not None:
            timer.observe(time.perf_counter() - started)

    def _failed(self) -> None:
        if self._metrics is not None:
            self._metrics.dependency_failures.labels("redis").inc()
            self._metrics.set_dependency("redis", False)
        if self._breaker is not None:
            self._breaker.record_failure()

    def _succeeded(self) -> None:
        if self._metrics is not None:
            self._metrics.set_dependency("redis", True)
        if self._breaker is not None:
            self._breaker.record_success()


def redis_breaker(
    *,
    failure_threshold: int = 5,
    base_backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> CircuitBreaker:
    """The breaker all Redis adapters of one instance should share."""
    return CircuitBreaker(
        "redis",
        failure_threshold=failure_threshold,
        base_backoff=base_backoff,
        max_backoff=max_backoff,
    )


async def create_redis(
    url: str,
    *,
    socket_timeout: float = 1.0,
    socket_connect_timeout: float = 1.0,
    health_check_interval: int = 15,
    max_connections: int = 100,
    pool_timeout: float = 1.0,
    client_name: str = "collabgate",
) -> aioredis.Redis:
    """A pooled asyncio client for ``url``, checked with PING before it is returned.

    With all ``max_connections`` busy, a call waits up to ``pool_timeout`` for one to come back
    (a blocking pool). redis-py's default pool fails such a call at once with "Too many
    connections", which under a burst turned a queue of a few milliseconds into failed requests
    and failed presence and session clean-ups (bench/cluster.py, docs/performance.md).

    Short timeouts because every caller is a user waiting on a frame: better a quick WS_5002 than a
    five-second stall (redis-py's default). Exactly one quick retry, and only on a broken
    connection, so a pooled socket cut by a Redis restart or failover heals transparently while an
    outage still fails fast; timeouts are not retried because the command may have run.

    Raises :class:`RedisStartupError` naming COLLABGATE_REDIS_URL when the URL is malformed, the
    credentials are refused, or Redis cannot be reached. The message never contains the password.
    """
    shown = redact_url(url)
    try:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            health_check_interval=health_check_interval,
            max_connections=max_connections,
            client_name=client_name,
            decode_responses=True,
            retry=Retry(
                ExponentialWithJitterBackoff(base=0.005, cap=0.05),
                retries=1,
                supported_errors=(redis_errors.ConnectionError,),
            ),
        )
        client = aioredis.Redis.from_pool(pool)
    except ValueError as exc:
        raise RedisStartupError(f"{REDIS_URL_VARIABLE}: invalid Redis URL {shown}: {exc}") from None
    try:
        await client.ping()
    except redis_errors.AuthenticationError as exc:
        await client.aclose()
        raise RedisStartupError(
            f"{REDIS_URL_VARIABLE}: Redis at {shown} refused the credentials: {exc}"
        ) from None
    except redis_errors.ResponseError as exc:  # NOAUTH, WRONGPASS, unknown DB index
        await client.aclose()
        raise RedisStartupError(f"{REDIS_URL_VARIABLE}: Redis at {shown} said: {exc}") from None
    except (redis_errors.RedisError, OSError) as exc:
        await client.aclose()
        raise RedisStartupError(
            f"{REDIS_URL_VARIABLE}: cannot reach Redis at {shown}: {exc}"
        ) from None
    return client


def text(value: bytes | str) -> str:
    """A reply as ``str``, whether or not the client was created with ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else value


def redact_url(url: str) -> str:
    """``url`` without its password, for error messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    if parts.password:
        user = f"{parts.username or ''}:***@"
    else:
        user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"
