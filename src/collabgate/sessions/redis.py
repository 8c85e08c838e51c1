"""Sessions in Redis: the per-user connection count that holds across instances.

Layout (``P`` is the key prefix)::

    P session:user:{user}  zset  connection_id -> expires_at (epoch ms, Redis clock)
    P session:conn:{conn}  hash  u -> user id, i -> instance id   (Redis TTL = the session TTL)

Why scores are expiry times: a connection whose instance died is simply not refreshed any more and
stops counting when its score passes; nobody has to notice the death. Times come from Redis
``TIME`` inside the scripts, so every instance judges expiry by the same clock whatever the skew
between gateway hosts. The per-connection hash lets :meth:`RedisSessionStore.touch` find the
user's set from the connection id alone.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from collabgate.ops.breaker import CircuitBreaker
from collabgate.ops.metrics import Metrics
from collabgate.ops.redis_support import Operation, RedisGuard

#: Redis TTL of a user's set beyond its newest session, so abandoned sets disappear.
SAFETY_MARGIN_MS: Final = 60_000

_LUA_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bump(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: user zset, connection hash
# ARGV: connection id, user id, instance id, ttl ms, margin ms
_OPEN = (
    _LUA_HELPERS
    + """
local conn, ttl = ARGV[1], tonumber(ARGV[4])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, conn)
redis.call('HSET', KEYS[2], 'u', ARGV[2], 'i', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
bump(KEYS[1], ttl + tonumber(ARGV[5]))
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: connection hash
# ARGV: connection id, ttl ms, prefix, margin ms
_TOUCH = (
    _LUA_HELPERS
    + """
local conn, ttl = ARGV[1], tonumber(ARGV[2])
local user = redis.call('HGET', KEYS[1], 'u')
if not user then return 0 end
local zkey = ARGV[3] .. 'session:user:' .. user
local now = now_ms()
local score = redis.call('ZSCORE', zkey, conn)
if not score or tonumber(score) <= now then return 0 end
redis.call('ZADD', zkey, now + ttl, conn)
redis.call('PEXPIRE', KEYS[1], ttl)
bump(zkey, ttl + tonumber(ARGV[4]))
return 1
"""
)

# KEYS: user zset, connection hash
# ARGV: connection id, user id
_CLOSE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], 'u') == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: user zset
_COUNT = (
    _LUA_HELPERS
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms(), '+inf')
"""
)


class RedisSessionStore:
    """:class:`~collabgate.sessions.port.SessionStore` on Redis, shared by every instance."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        metrics: Metrics | None = None,
        breaker: CircuitBreaker | None = None,
        guard: RedisGuard | None = None,
    ) -> None:
        self._prefix = prefix
        self._guard = guard or RedisGuard(metrics, breaker)
        self._open = redis.register_script(_OPEN)
        self._touch = redis.register_script(_TOUCH)
        self._close = redis.register_script(_CLOSE)
        self._count = redis.register_script(_COUNT)

    async def open(
        self, user_id: str, connection_id: str, instance_id: str, ttl_seconds: float
    ) -> int:
        keys = [self._user_key(user_id), self._connection_key(connection_id)]
        args = [connection_id, user_id, instance_id, _ms(ttl_seconds), SAFETY_MARGIN_MS]
        return int(await self._run("session_open", self._open, keys, args))

    async def touch(self, connection_id: str, ttl_seconds: float) -> bool:
        keys = [self._connection_key(connection_id)]
        args = [connection_id, _ms(ttl_seconds), self._prefix, SAFETY_MARGIN_MS]
        return bool(await self._run("session_touch", self._touch, keys, args))

    async def close_connection(self, user_id: str, connection_id: str) -> None:
        keys = [self._user_key(user_id), self._connection_key(connection_id)]
        await self._run("session_close", self._close, keys, [connection_id, user_id])

    async def count(self, user_id: str) -> int:
        return int(await self._run("session_count", self._count, [self._user_key(user_id)], []))

    async def close(self) -> None:
        """Nothing to release: the client is shared, and sessions expire by themselves."""

    async def _run(
        self, operation: Operation, script: AsyncScript, keys: list[str], args: list[Any]
    ) -> Any:
        return await self._guard.run(operation, lambda: script(keys=keys, args=args))

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}session:user:{user_id}"

    def _connection_key(self, connection_id: str) -> str:
        return f"{self._prefix}session:conn:{connection_id}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
