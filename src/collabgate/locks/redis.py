"""Edit locks in Redis, shared by every gateway instance.

Layout (``P`` is the key prefix)::

    P lock:res:{resource}    hash  target -> "expires_at|fencing_token|lock_id|holder"
    P lock:fence:{resource}  hash  target -> last fencing token (never expires, only grows)
    P lock:user:{user}       set   locks the user holds, as "len(resource):resource target"
    P lock:expiry            zset  same members, scored by expires_at (epoch ms)

Why this shape:

* Every decision (conflict check, grant, refresh, compare-and-delete) is one Lua script, so two
  instances racing for the same lock cannot both win, and a release by someone who is not the
  holder never deletes the holder's lock.
* Expiry is *data* (``expires_at`` from the caller's clock), not a Redis TTL. A lock whose time
  has passed is dead for every read and decision at once, yet stays stored until
  :meth:`RedisLockStore.pop_expired` removes it, so that exactly one instance announces each
  expiry. A Redis TTL would delete keys silently and nobody would broadcast the unlock.
* The fencing counter lives apart from the lock and never expires, so tokens keep growing across
  releases, expiries and restarts of any instance.
* Keys still get a generous Redis TTL (``expires_at`` + ``safety_margin_ms``) so that keys
  abandoned when every instance is gone do not live forever; correctness does not depend on it.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from collabgate.locks.port import WHOLE_RESOURCE, Denied, Lock
from collabgate.ops.breaker import CircuitBreaker
from collabgate.ops.metrics import Metrics
from collabgate.ops.redis_support import Operation, RedisGuard, text

#: Redis TTL beyond a lock's own expiry, so abandoned keys disappear eventually.
DEFAULT_SAFETY_MARGIN_MS: Final = 3_600_000
#: Expired locks removed per script run, so one sweep never blocks Redis for long.
POP_BATCH: Final = 500

_LUA_HELPERS = """
local function parse(v)
  local exp, token, id, holder = string.match(v, '^(%-?%d+)|(%d+)|(%x+)|(.*)$')
  return tonumber(exp), token, id, holder
end
local function encode(exp, token, id, holder)
  return string.format('%d|%d|%s|%s', exp, token, id, holder)
end
local function member(res, target)
  return string.len(res) .. ':' .. res .. target
end
local function split(m)
  local n, rest = string.match(m, '^(%d+):(.*)$')
  n = tonumber(n)
  return string.sub(rest, 1, n), string.sub(rest, n + 1)
end
local function bump(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: resource hash, fence hash, expiry zset, user index
# ARGV: resource, target, user, now, ttl, new lock id, safety margin, prefix, whole-resource target
_ACQUIRE = (
    _LUA_HELPERS
    + """
local res, target, user = ARGV[1], ARGV[2], ARGV[3]
local now, ttl, margin = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local whole = ARGV[9]
local held = redis.call('HGETALL', KEYS[1])
local mine, stale_holder = nil, nil
for i = 1, #held, 2 do
  local t, v = held[i], held[i + 1]
  local exp, token, id, holder = parse(v)
  if exp > now then
    if holder ~= user and (t == whole or target == whole or t == target) then
      return {0, t, v}
    end
    if t == target then mine = {token, id} end
  elseif t == target then
    stale_holder = holder
  end
end
local token, id
if mine then
  token, id = mine[1], mine[2]
else
  if stale_holder then
    redis.call('SREM', ARGV[8] .. 'lock:user:' .. stale_holder, member(res, target))
  end
  token = redis.call('HINCRBY', KEYS[2], target, 1)
  id = ARGV[6]
  redis.call('SADD', KEYS[4], member(res, target))
end
local value = encode(now + ttl, token, id, user)
redis.call('HSET', KEYS[1], target, value)
redis.call('ZADD', KEYS[3], now + ttl, member(res, target))
bump(KEYS[1], ttl + margin)
bump(KEYS[4], ttl + margin)
return {1, target, value}
"""
)

# KEYS: resource hash, expiry zset, user index
# ARGV: resource, target, user, now, ttl, safety margin
_EXTEND = (
    _LUA_HELPERS
    + """
local res, target, user = ARGV[1], ARGV[2], ARGV[3]
local now, ttl, margin = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local v = redis.call('HGET', KEYS[1], target)
if not v then return false end
local exp, token, id, holder = parse(v)
if exp <= now or holder ~= user then return false end
local value = encode(now + ttl, token, id, user)
redis.call('HSET', KEYS[1], target, value)
redis.call('ZADD', KEYS[2], now + ttl, member(res, target))
bump(KEYS[1], ttl + margin)
bump(KEYS[3], ttl + margin)
return value
"""
)

# KEYS: resource hash, expiry zset, user index
# ARGV: resource, target, user, now
_RELEASE = (
    _LUA_HELPERS
    + """
local res, target, user, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local v = redis.call('HGET', KEYS[1], target)
if not v then return false end
local exp, token, id, holder = parse(v)
if exp <= now or holder ~= user then return false end
redis.call('HDEL', KEYS[1], target)
redis.call('ZREM', KEYS[2], member(res, target))
redis.call('SREM', KEYS[3], member(res, target))
return v
"""
)

# KEYS: expiry zset
# ARGV: now, batch size, prefix
# Returns {more, {resource, target, value, ...}}: every popped lock is deleted in the same script,
# so concurrent sweepers on several instances get disjoint results.
_POP_EXPIRED = (
    _LUA_HELPERS
    + """
local now, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, m in ipairs(due) do
  local res, target = split(m)
  local key = prefix .. 'lock:res:' .. res
  local v = redis.call('HGET', key, target)
  if not v then
    redis.call('ZREM', KEYS[1], m)
  else
    local exp, token, id, holder = parse(v)
    if exp <= now then
      redis.call('HDEL', key, target)
      redis.call('ZREM', KEYS[1], m)
      redis.call('SREM', prefix .. 'lock:user:' .. holder, m)
      out[#out + 1] = res
      out[#out + 1] = target
      out[#out + 1] = v
    else
      redis.call('ZADD', KEYS[1], exp, m)
    end
  end
end
local more = 0
if #due == limit then more = 1 end
return {more, out}
"""
)

# KEYS: user index
# ARGV: user, now, prefix
_HELD_BY = (
    _LUA_HELPERS
    + """
local user, now, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local res, target = split(m)
  local v = redis.call('HGET', prefix .. 'lock:res:' .. res, target)
  local exp, holder = nil, nil
  if v then
    local e, token, id, h = parse(v)
    exp, holder = e, h
  end
  if holder ~= user then
    redis.call('SREM', KEYS[1], m)
  elseif exp > now then
    out[#out + 1] = res
    out[#out + 1] = target
    out[#out + 1] = v
  end
end
return out
"""
)


class RedisLockStore:
    """:class:`~collabgate.locks.port.LockStore` on Redis; behaves exactly like the memory one."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        metrics: Metrics | None = None,
        breaker: CircuitBreaker | None = None,
        guard: RedisGuard | None = None,
        safety_margin_ms: int = DEFAULT_SAFETY_MARGIN_MS,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._guard = guard or RedisGuard(metrics, breaker)
        self._margin = safety_margin_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self._pop_expired = redis.register_script(_POP_EXPIRED)
        self._held_by = redis.register_script(_HELD_BY)

    async def acquire(
        self, resource_id: str, target: str, user_id: str, ttl_ms: int, now_ms: int
    ) -> Lock | Denied:
        keys = [
            self._resource_key(resource_id),
            self._prefix + "lock:fence:" + resource_id,
            self._expiry_key,
            self._user_key(user_id),
        ]
        args = [resource_id, target, user_id, now_ms, ttl_ms, uuid.uuid4().hex, self._margin]
        args += [self._prefix, WHOLE_RESOURCE]
        granted, held_target, value = await self._run("lock_acquire", self._acquire, keys, args)
        lock = _decode(resource_id, text(held_target), text(value))
        return lock if granted == 1 else Denied(lock)

    async def extend(
        self, resource_id: str, target: str, user_id: str, ttl_ms: int, now_ms: int
    ) -> Lock | None:
        keys = [self._resource_key(resource_id), self._expiry_key, self._user_key(user_id)]
        args = [resource_id, target, user_id, now_ms, ttl_ms, self._margin]
        value = await self._run("lock_extend", self._extend, keys, args)
        return None if value is None else _decode(resource_id, target, text(value))

    async def release(
        self, resource_id: str, target: str, user_id: str, now_ms: int
    ) -> Lock | None:
        keys = [self._resource_key(resource_id), self._expiry_key, self._user_key(user_id)]
        value = await self._run(
            "lock_release", self._release, keys, [resource_id, target, user_id, now_ms]
        )
        return None if value is None else _decode(resource_id, target, text(value))

    async def locks(self, resource_id: str, now_ms: int) -> list[Lock]:
        key = self._resource_key(resource_id)
        held = await self._guard.run("lock_list", lambda: self._redis.hgetall(key))
        decoded = (_decode(resource_id, text(t), text(v)) for t, v in held.items())
        return [lock for lock in decoded if lock.expires_at > now_ms]

    async def held_by(self, user_id: str, now_ms: int) -> list[Lock]:
        flat = await self._run(
            "lock_held_by",
            self._held_by,
            [self._user_key(user_id)],
            [user_id, now_ms, self._prefix],
        )
        return _decode_triples(flat)

    async def pop_expired(self, now_ms: int) -> list[Lock]:
        expired: list[Lock] = []
        more = 1
        while more:
            more, flat = await self._run(
                "lock_pop_expired",
                self._pop_expired,
                [self._expiry_key],
                [now_ms, POP_BATCH, self._prefix],
            )
            expired += _decode_triples(flat)
        return expired

    async def close(self) -> None:
        """Nothing to release: the client belongs to whoever created it (it is shared)."""

    async def _run(
        self, operation: Operation, script: AsyncScript, keys: list[str], args: list[Any]
    ) -> Any:
        return await self._guard.run(operation, lambda: script(keys=keys, args=args))

    @property
    def _expiry_key(self) -> str:
        return self._prefix + "lock:expiry"

    def _resource_key(self, resource_id: str) -> str:
        return self._prefix + "lock:res:" + resource_id

    def _user_key(self, user_id: str) -> str:
        return self._prefix + "lock:user:" + user_id


def _decode(resource_id: str, target: str, value: str) -> Lock:
    """A lock from its stored form ``expires_at|fencing_token|lock_id|holder``."""
    expires_at, token, lock_id, holder = value.split("|", 3)
    return Lock(
        resource_id=resource_id,
        target=target,
        holder_user_id=holder,
        lock_id=lock_id,
        fencing_token=int(token),
        expires_at=int(expires_at),
    )


def _decode_triples(flat: list[Any]) -> list[Lock]:
    return [
        _decode(text(flat[i]), text(flat[i + 1]), text(flat[i + 2])) for i in range(0, len(flat), 3)
    ]
