"""The Redis client's pool: a burst beyond its connections waits for one instead of failing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from collabgate.ops.redis_support import RedisStartupError, create_redis
from tests.contract.conftest import TEST_REDIS_URL
from tests.support.requirements import unavailable


async def connect(max_connections: int, pool_timeout: float) -> aioredis.Redis:
    try:
        return await create_redis(
            TEST_REDIS_URL, max_connections=max_connections, pool_timeout=pool_timeout
        )
    except RedisStartupError as exc:
        unavailable(f"Redis tests need a Redis at {TEST_REDIS_URL}: {exc}")


async def test_a_burst_beyond_the_pool_waits_for_a_connection() -> None:
    redis = await connect(max_connections=2, pool_timeout=5)
    empty = f"cgtest:{uuid.uuid4().hex}:never"
    try:
        # Each BLPOP holds its connection for 50 ms: 20 of them need the 2 connections in turn.
        results = await asyncio.gather(*(redis.blpop([empty], timeout=0.05) for _ in range(20)))
        assert results == [None] * 20
    finally:
        await redis.aclose()


async def test_a_call_that_waits_longer_than_the_pool_timeout_fails() -> None:
    redis = await connect(max_connections=1, pool_timeout=0.1)
    pool = redis.connection_pool
    try:
        held = await pool.get_connection()  # the only connection, taken
        with pytest.raises(redis_errors.ConnectionError, match="No connection available"):
            await redis.get(f"cgtest:{uuid.uuid4().hex}:any")
        await pool.release(held)
        assert await redis.ping()
    finally:
        await redis.aclose()
