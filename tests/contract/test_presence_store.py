"""PresenceStore contract: every adapter (memory, Redis) must pass the shared part unchanged.

The Redis adapter also serves several instances and must clean up after one that dies; those tests
are at the end and run for Redis only.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from collabgate.presence.port import Member, PresenceStore
from collabgate.presence.redis import RedisPresenceStore

if TYPE_CHECKING:
    from tests.contract.conftest import StateBackend

R1, R2 = "patient:1", "patient:2"


def member(connection_id: str, user_id: str, joined_at: int = 1000, **extra: str) -> Member:
    return Member(
        connection_id=connection_id,
        user_id=user_id,
        role=extra.get("role", "nurse"),
        mode=extra.get("mode", "editor"),
        joined_at=joined_at,
        name=extra.get("name"),
    )


def users(members: list[Member]) -> list[str]:
    return [m.user_id for m in members]


# --------------------------------------------------------------------------- shared contract
async def test_empty_resource_has_no_members(presence_store: PresenceStore) -> None:
    assert await presence_store.members(R1) == []
    assert await presence_store.user_count(R1) == 0
    assert await presence_store.remove(R1, "nope") == (None, False)


async def test_add_reports_the_first_connection_of_each_user(presence_store: PresenceStore) -> None:
    assert await presence_store.add(R1, member("c1", "alice")) is True
    assert await presence_store.add(R1, member("c2", "bob")) is True
    assert await presence_store.add(R1, member("c3", "alice")) is False
    assert await presence_store.add(R2, member("c4", "alice")) is True  # per resource


async def test_member_round_trips_every_field(presence_store: PresenceStore) -> None:
    full = member("c1", "alice", 1234, role="surgeon", mode="viewer", name='Dr Ålice | "A"')
    bare = member("c2", "bob", 1235)
    await presence_store.add(R1, full)
    await presence_store.add(R1, bare)
    assert await presence_store.members(R1) == [full, bare]


async def test_members_lists_each_user_once_by_earliest_connection_oldest_first(
    presence_store: PresenceStore,
) -> None:
    await presence_store.add(R1, member("c-bob", "bob", 2000))
    await presence_store.add(R1, member("c-alice-late", "alice", 3000))
    await presence_store.add(R1, member("c-alice-early", "alice", 1000))
    await presence_store.add(R1, member("c-carol", "carol", 2500))
    members = await presence_store.members(R1)
    assert [m.connection_id for m in members] == ["c-alice-early", "c-bob", "c-carol"]
    assert await presence_store.user_count(R1) == 3


async def test_equal_join_times_keep_insertion_order(presence_store: PresenceStore) -> None:
    for name in ["zoe", "adam", "mia", "bob"]:
        await presence_store.add(R1, member(f"c-{name}", name, 1000))
    assert users(await presence_store.members(R1)) == ["zoe", "adam", "mia", "bob"]


async def test_remove_reports_the_last_connection_of_a_user(presence_store: PresenceStore) -> None:
    first, second = member("c1", "alice", 1000), member("c2", "alice", 2000)
    await presence_store.add(R1, first)
    await presence_store.add(R1, second)
    await presence_store.add(R1, member("c3", "bob", 3000))
    assert await presence_store.remove(R1, "c1") == (first, False)
    assert users(await presence_store.members(R1)) == ["alice", "bob"]
    assert (await presence_store.members(R1))[0] == second  # the remaining connection stands in
    assert await presence_store.remove(R1, "c2") == (second, True)
    assert users(await presence_store.members(R1)) == ["bob"]
    assert await presence_store.remove(R1, "c2") == (None, False)


async def test_remove_from_another_resource_changes_nothing(presence_store: PresenceStore) -> None:
    await presence_store.add(R1, member("c1", "alice"))
    assert await presence_store.remove(R2, "c1") == (None, False)
    assert await presence_store.user_count(R1) == 1


async def test_user_count_counts_users_not_connections(presence_store: PresenceStore) -> None:
    for i in range(5):
        await presence_store.add(R1, member(f"a{i}", "alice"))
    await presence_store.add(R1, member("b", "bob"))
    assert await presence_store.user_count(R1) == 2
    assert await presence_store.user_count(R2) == 0


async def test_rejoin_after_leaving_is_a_first_connection_again(
    presence_store: PresenceStore,
) -> None:
    await presence_store.add(R1, member("c1", "alice"))
    await presence_store.remove(R1, "c1")
    assert await presence_store.add(R1, member("c2", "alice")) is True


# --------------------------------------------------------------------------- several instances (Redis)
@pytest.fixture
def redis_only(redis_kv_backend: StateBackend) -> StateBackend:
    return redis_kv_backend


async def instance(backend: StateBackend, name: str, ttl: float = 30.0) -> RedisPresenceStore:
    store = await backend.presence(instance_id=name, member_ttl_seconds=ttl, separate_client=True)
    assert isinstance(store, RedisPresenceStore)
    assert await store.heartbeat() is True
    return store


async def kill(backend: StateBackend, store: RedisPresenceStore) -> None:
    """What a crash looks like from outside: the liveness key is gone and nobody refreshes it."""
    client = await backend.client()
    await client.delete(f"{backend.prefix('main')}presence:alive:{store.instance_id}")


async def test_instances_see_each_others_members(redis_only: StateBackend) -> None:
    a, b = await instance(redis_only, "a"), await instance(redis_only, "b")
    assert await a.add(R1, member("a1", "alice", 1000)) is True
    assert await b.add(R1, member("b1", "alice", 2000)) is False
    assert await b.add(R1, member("b2", "bob", 3000)) is True
    assert users(await a.members(R1)) == ["alice", "bob"]
    assert await b.remove(R1, "b1") == (member("b1", "alice", 2000), False)
    assert await a.remove(R1, "a1") == (member("a1", "alice", 1000), True)


async def test_members_of_a_dead_instance_disappear_and_are_reaped_once(
    redis_only: StateBackend,
) -> None:
    a, b, c = [await instance(redis_only, name) for name in "abc"]
    await a.add(R1, member("a-alice-1", "alice", 1000))
    await a.add(R1, member("a-alice-2", "alice", 1001))  # two tabs on the dying instance
    await a.add(R1, member("a-bob", "bob", 1002))  # bob also has a tab on b
    await b.add(R1, member("b-bob", "bob", 1003))
    await a.add(R2, member("a-carol", "carol", 1004))
    await b.add(R2, member("b-dave", "dave", 1005))

    await kill(redis_only, a)
    assert users(await b.members(R1)) == ["bob"]
    assert await b.user_count(R2) == 1

    reaped = await asyncio.gather(b.reap_dead_instances(), c.reap_dead_instances())
    flat = sorted((res, m.connection_id, last) for batch in reaped for res, m, last in batch)
    alice_flags = sorted(last for res, conn, last in flat if conn.startswith("a-alice"))
    assert alice_flags == [False, True], "alice must be announced as gone exactly once"
    assert [entry for entry in flat if not entry[1].startswith("a-alice")] == [
        (R1, "a-bob", False),  # bob is still there on b
        (R2, "a-carol", True),
    ]
    assert await b.reap_dead_instances() == []
    assert await c.remove(R1, "a-bob") == (None, False)


async def test_an_instance_does_not_reap_itself_and_a_live_one_is_left_alone(
    redis_only: StateBackend,
) -> None:
    a, b = await instance(redis_only, "a"), await instance(redis_only, "b")
    await a.add(R1, member("a1", "alice"))
    await b.add(R1, member("b1", "bob"))
    await kill(redis_only, a)
    assert await a.reap_dead_instances() == []
    assert await b.reap_dead_instances() != []
    assert await a.reap_dead_instances() == []


async def test_heartbeat_reports_a_lapse_so_the_instance_can_rejoin(
    redis_only: StateBackend,
) -> None:
    a = await instance(redis_only, "a")
    assert await a.heartbeat() is True
    await kill(redis_only, a)
    assert await a.heartbeat() is False
    assert await a.heartbeat() is True


async def test_liveness_expires_by_itself_when_heartbeats_stop(redis_only: StateBackend) -> None:
    a = await instance(redis_only, "a", ttl=0.5)
    b = await instance(redis_only, "b")
    await a.add(R1, member("a1", "alice"))
    assert await b.user_count(R1) == 1
    deadline = time.monotonic() + 5
    while await b.user_count(R1) != 0:
        assert time.monotonic() < deadline, "dead instance's member still listed after 5 s"
        await asyncio.sleep(0.05)
    [(resource_id, gone, last)] = await b.reap_dead_instances()
    assert (resource_id, gone.connection_id, last) == (R1, "a1", True)


async def test_closing_an_instance_lets_others_reap_it_at_once(redis_only: StateBackend) -> None:
    a, b = await instance(redis_only, "a"), await instance(redis_only, "b")
    await a.add(R1, member("a1", "alice"))
    await a.close()
    assert await b.members(R1) == []
    assert [(r, m.connection_id, last) for r, m, last in await b.reap_dead_instances()] == [
        (R1, "a1", True)
    ]


async def test_reaping_a_large_instance_works_in_batches(redis_only: StateBackend) -> None:
    a, b = await instance(redis_only, "a"), await instance(redis_only, "b")
    for i in range(1200):
        await a.add(f"patient:{i % 40}", member(f"a{i}", f"user{i}"))
    await kill(redis_only, a)
    reaped = await b.reap_dead_instances()
    assert len(reaped) == 1200
    assert all(last for _, _, last in reaped)
    assert await b.reap_dead_instances() == []
