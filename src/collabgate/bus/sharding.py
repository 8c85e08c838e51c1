"""Shard keys: how room events are routed on the broker without one binding per room.

A queue binding per room would mean a ``queue.bind``/``queue.unbind`` pair every time a room
gains or loses its first local user. RabbitMQ keeps bindings in its metadata store, so at scale that
churn costs broker CPU and, on a cluster, a replicated metadata write per join and leave. Instead
every room hashes onto one of a fixed, small number of shards and events carry the shard's routing
key. Bindings then change only when an instance starts.

Today every instance binds every shard, because any room can have users on any instance. The
scaling path, when the fleet grows large enough that each instance receiving every room's events
is the bottleneck, is for an instance to bind only the shards of the rooms it holds (still a
bounded set, changing rarely compared with joins and leaves) — this module already gives the shard
of a room, so that is a change in the adapter, not in the wire format.

The hash must be stable across processes and Python versions: the built-in :func:`hash` is salted
per process (PYTHONHASHSEED), so CRC-32 is used. Every instance of a fleet must use the same shard
count, or an instance would bind keys that the others never publish to.
"""

from __future__ import annotations

import zlib
from typing import Final

ROUTING_KEY_PREFIX: Final = "shard."
MAX_SHARDS: Final = 4096


def check_shard_count(shards: int) -> int:
    """``shards`` if it is usable (1..MAX_SHARDS), else :class:`ValueError`."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shard count must be between 1 and {MAX_SHARDS}, got {shards}")
    return shards


def shard_of(resource_id: str, shards: int) -> int:
    """The shard ``resource_id`` belongs to: the same in every process of the fleet."""
    return zlib.crc32(resource_id.encode("utf-8")) % shards


def routing_key(shard: int) -> str:
    """The routing key events of ``shard`` are published with (``shard.17``)."""
    return f"{ROUTING_KEY_PREFIX}{shard}"


def routing_key_for(resource_id: str, shards: int) -> str:
    """The routing key for an event of ``resource_id``."""
    return routing_key(shard_of(resource_id, shards))


def all_routing_keys(shards: int) -> tuple[str, ...]:
    """Every routing key of a fleet with ``shards`` shards, in shard order."""
    return tuple(routing_key(shard) for shard in range(shards))
