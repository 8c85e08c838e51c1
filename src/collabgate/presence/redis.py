"""Presence in Redis, shared by every gateway instance, cleaning up after instances that die.

Layout (``P`` is the key prefix)::

    P presence:res:{resource}   hash    connection_id -> "seq|{n}:{instance}{n}:{user}{JSON}"
    P presence:inst:{instance}  set     that instance's memberships, "len(resource):resource conn"
    P presence:instances        set     every instance that has registered members
    P presence:alive:{instance} string  liveness key, refreshed by heartbeat() with a TTL
    P presence:seq              counter insertion order, to break ties of equal joined_at

How a dead instance is cleaned up: a live instance refreshes its liveness key every
``member_ttl_seconds / 3`` (:meth:`RedisPresenceStore.heartbeat`). When an instance dies its key
expires. Reads (:meth:`~RedisPresenceStore.members`, :meth:`~RedisPresenceStore.user_count`)
skip members of instances without a liveness key at once. Deleting them is left to
:meth:`~RedisPresenceStore.reap_dead_instances`, which every instance runs periodically over the
``instances`` set: entries are taken with SPOP inside one script, so whoever gets there first reaps
each membership exactly once and the gateway can broadcast USER_LEFT for it. (Reads do not delete,
or the USER_LEFT for those members would never be sent.)

Why join/leave counting includes not-yet-reaped members of dead instances: so that each user gets
exactly one USER_JOINED and one USER_LEFT however the connections come and go. A user who reconnects
to another instance before the dead one is reaped is not announced again, and the reap of the dead
connection then reports ``last_for_user=False``.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from collabgate.ops.breaker import CircuitBreaker
from collabgate.ops.metrics import Metrics
from collabgate.ops.redis_support import Operation, RedisGuard, text
from collabgate.presence.port import Member

#: Memberships of dead instances removed per script run, so a reap never blocks Redis for long.
REAP_BATCH: Final = 500

# A stored value is "seq|{len}:{instance id}{len}:{user id}{member JSON}" (lengths in bytes), so
# scripts read the instance and user with string.find instead of decoding JSON: members() of a
# 200-user room costs ~130 us of Redis time instead of ~400 us with cjson.
_LUA_HELPERS = """
local function header(v)
  local _, e, seq, n = string.find(v, '^(%d+)|(%d+):')
  n = tonumber(n)
  local iid = string.sub(v, e + 1, e + n)
  local _, e2, m = string.find(v, '^(%d+):', e + n + 1)
  return seq, iid, string.sub(v, e2 + 1, e2 + tonumber(m))
end
local function instance_of(v)
  local _, e, n = string.find(v, '^%d+|(%d+):')
  return string.sub(v, e + 1, e + tonumber(n))
end
local function user_of(v)
  local _, _, user = header(v)
  return user
end
local function has_user(room_key, user)
  for _, v in ipairs(redis.call('HVALS', room_key)) do
    if user_of(v) == user then return true end
  end
  return false
end
local function member(res, conn)
  return string.len(res) .. ':' .. res .. conn
end
local function split(m)
  local n, rest = string.match(m, '^(%d+):(.*)$')
  n = tonumber(n)
  return string.sub(rest, 1, n), string.sub(rest, n + 1)
end
"""

# KEYS: room hash, own instance index, instances set, own liveness key, seq counter
# ARGV: connection id, user id, stored value without its "seq|", instance id, index member,
#       liveness ttl ms
# Returns {first_for_user, liveness_key_was_created}
_ADD = (
    _LUA_HELPERS
    + """
local conn, user, rest, iid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('SADD', KEYS[3], iid)
local created = 0
if redis.call('SET', KEYS[4], iid, 'PX', ARGV[6], 'NX') then created = 1 end
local first = 1
if has_user(KEYS[1], user) then first = 0 end
local old = redis.call('HGET', KEYS[1], conn)
local seq
if old then
  seq = header(old)
else
  seq = redis.call('INCR', KEYS[5])
end
redis.call('HSET', KEYS[1], conn, seq .. '|' .. rest)
redis.call('SADD', KEYS[2], ARGV[5])
return {first, created}
"""
)

# KEYS: room hash
# ARGV: connection id, resource id, prefix
# Returns false, or {stored value, last_for_user}
_REMOVE = (
    _LUA_HELPERS
    + """
local conn, res, prefix = ARGV[1], ARGV[2], ARGV[3]
local v = redis.call('HGET', KEYS[1], conn)
if not v then return false end
local _, iid, user = header(v)
redis.call('HDEL', KEYS[1], conn)
redis.call('SREM', prefix .. 'presence:inst:' .. iid, member(res, conn))
local last = 1
if has_user(KEYS[1], user) then last = 0 end
return {v, last}
"""
)

# KEYS: room hash
# ARGV: prefix
# Returns the stored values of members whose instance is alive.
_LIVE_MEMBERS = (
    _LUA_HELPERS
    + """
local prefix = ARGV[1]
local alive = {}
local out = {}
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local iid = instance_of(v)
  local a = alive[iid]
  if a == nil then
    a = redis.call('EXISTS', prefix .. 'presence:alive:' .. iid) == 1
    alive[iid] = a
  end
  if a then out[#out + 1] = v end
end
return out
"""
)

# KEYS: instances set
# ARGV: own instance id, prefix, batch size
# Returns {more, {resource, stored value, last_for_user, ...}}
_REAP = (
    _LUA_HELPERS
    + """
local self_id, prefix, budget = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for _, iid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if iid ~= self_id and redis.call('EXISTS', prefix .. 'presence:alive:' .. iid) == 0 then
    local index = prefix .. 'presence:inst:' .. iid
    local entries = redis.call('SPOP', index, budget)
    for _, e in ipairs(entries) do
      local res, conn = split(e)
      local room = prefix .. 'presence:res:' .. res
      local v = redis.call('HGET', room, conn)
      if v and instance_of(v) == iid then
        redis.call('HDEL', room, conn)
        local last = 1
        if has_user(room, user_of(v)) then last = 0 end
        out[#out + 1] = res
        out[#out + 1] = v
        out[#out + 1] = last
      end
    end
    budget = budget - #entries
    if redis.call('SCARD', index) == 0 then redis.call('SREM', KEYS[1], iid) end
    if budget <= 0 then return {1, out} end
  end
end
return {0, out}
"""
)


class RedisPresenceStore:
    """:class:`~collabgate.presence.port.PresenceStore` on Redis, for several instances.

    The gateway must call :meth:`heartbeat` every ``member_ttl_seconds / 3`` and
    :meth:`reap_dead_instances` periodically (broadcasting USER_LEFT for what it returns).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        instance_id: str,
        member_ttl_seconds: float,
        metrics: Metrics | None = None,
        breaker: CircuitBreaker | None = None,
        guard: RedisGuard | None = None,
    ) -> None:
        if member_ttl_seconds <= 0:
            raise ValueError("member_ttl_seconds must be positive")
        self._redis = redis
        self._prefix = prefix
        self.instance_id = instance_id
        self._ttl_ms = max(1, int(member_ttl_seconds * 1000))
        self._guard = guard or RedisGuard(metrics, breaker)
        self._alive_key = f"{prefix}presence:alive:{instance_id}"
        self._instances_key = prefix + "presence:instances"
        self._established = False  # our liveness key has existed at least once
        self._lapsed = False  # it expired while we were running (we may have been reaped)
        self._add = redis.register_script(_ADD)
        self._remove = redis.register_script(_REMOVE)
        self._live_members = redis.register_script(_LIVE_MEMBERS)
        self._reap = redis.register_script(_REAP)

    @property
    def heartbeat_interval_seconds(self) -> float:
        """How often :meth:`heartbeat` should run: a third of the TTL, so two beats may fail."""
        return self._ttl_ms / 3000

    async def add(self, resource_id: str, member: Member) -> bool:
        keys = [
            self._room_key(resource_id),
            f"{self._prefix}presence:inst:{self.instance_id}",
            self._instances_key,
            self._alive_key,
            self._prefix + "presence:seq",
        ]
        args = [
            member.connection_id,
            member.user_id,
            _encode_member(member, self.instance_id),
            self.instance_id,
            _index_member(resource_id, member.connection_id),
            self._ttl_ms,
        ]
        first, created = await self._run("presence_add", self._add, keys, args)
        self._note_liveness(continuous=not created)
        return bool(first)

    async def remove(self, resource_id: str, connection_id: str) -> tuple[Member | None, bool]:
        reply = await self._run(
            "presence_remove",
            self._remove,
            [self._room_key(resource_id)],
            [connection_id, resource_id, self._prefix],
        )
        if reply is None:
            return None, False
        value, last = reply
        return _decode_value(text(value))[1], bool(last)

    async def members(self, resource_id: str) -> list[Member]:
        values = await self._run(
            "presence_members", self._live_members, [self._room_key(resource_id)], [self._prefix]
        )
        by_user: dict[str, Member] = {}
        decoded = sorted((_decode_value(text(v)) for v in values), key=lambda pair: pair[0])
        for _, member in decoded:
            by_user.setdefault(member.user_id, member)
        return list(by_user.values())

    async def user_count(self, resource_id: str) -> int:
        return len(await self.members(resource_id))

    async def heartbeat(self) -> bool:
        """Refresh this instance's liveness; False when it had lapsed since the previous beat.

        False means other instances may have reaped (and announced as gone) members of this
        instance: the gateway should re-add the memberships of its open connections.
        """

        async def beat() -> Any:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._alive_key, self.instance_id, px=self._ttl_ms, get=True)
                pipe.sadd(self._instances_key, self.instance_id)
                return await pipe.execute()

        previous, _ = await self._guard.run("presence_heartbeat", beat)
        self._note_liveness(continuous=previous is not None)
        continuous = not self._lapsed
        self._lapsed = False
        return continuous

    async def reap_dead_instances(self) -> list[tuple[str, Member, bool]]:
        """Remove memberships of instances whose liveness key expired.

        Returns ``(resource_id, member, last_for_user)`` for each, exactly once across all
        instances calling this concurrently; broadcast USER_LEFT where ``last_for_user``.
        """
        reaped: list[tuple[str, Member, bool]] = []
        more = 1
        while more:
            more, flat = await self._run(
                "presence_reap",
                self._reap,
                [self._instances_key],
                [self.instance_id, self._prefix, REAP_BATCH],
            )
            for i in range(0, len(flat), 3):
                member = _decode_value(text(flat[i + 1]))[1]
                reaped.append((text(flat[i]), member, bool(flat[i + 2])))
        return reaped

    async def close(self) -> None:
        """Leave: drop the liveness key so others reap what is left of us without waiting."""
        await self._guard.run("presence_heartbeat", lambda: self._redis.delete(self._alive_key))

    def _note_liveness(self, *, continuous: bool) -> None:
        if self._established and not continuous:
            self._lapsed = True
        self._established = True

    async def _run(
        self, operation: Operation, script: AsyncScript, keys: list[str], args: list[Any]
    ) -> Any:
        return await self._guard.run(operation, lambda: script(keys=keys, args=args))

    def _room_key(self, resource_id: str) -> str:
        return f"{self._prefix}presence:res:{resource_id}"


def _index_member(resource_id: str, connection_id: str) -> str:
    # Lua's string.len counts bytes, so the length prefix does too.
    return f"{len(resource_id.encode())}:{resource_id}{connection_id}"


def _encode_member(member: Member, instance_id: str) -> str:
    """The stored value less its ``seq|`` (the add script assigns that).

    Member JSON keys are short because there is one value per connection per resource:
    c connection_id, r role, m mode, j joined_at, n name.
    """
    body = orjson.dumps(
        {
            "c": member.connection_id,
            "r": member.role,
            "m": member.mode,
            "j": member.joined_at,
            "n": member.name,
        }
    ).decode()
    return f"{_sized(instance_id)}{_sized(member.user_id)}{body}"


def _sized(value: str) -> str:
    return f"{len(value.encode())}:{value}"


def _decode_value(value: str) -> tuple[tuple[int, int], Member]:
    """``((joined_at, seq), member)`` from a stored value; the key sorts like the memory store."""
    seq, rest = value.encode().split(b"|", 1)
    _, rest = _take_sized(rest)  # the instance id
    user_id, rest = _take_sized(rest)
    data = orjson.loads(rest)
    member = Member(
        connection_id=data["c"],
        user_id=user_id,
        role=data["r"],
        mode=data["m"],
        joined_at=data["j"],
        name=data["n"],
    )
    return (member.joined_at, int(seq)), member


def _take_sized(raw: bytes) -> tuple[str, bytes]:
    size, rest = raw.split(b":", 1)
    end = int(size)
    return rest[:end].decode(), rest[end:]
