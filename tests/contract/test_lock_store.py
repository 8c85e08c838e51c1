"""LockStore contract: every adapter (memory, Redis) must pass this suite unchanged.

Time is the caller's ``now_ms`` argument, so expiry is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collabgate.locks.port import WHOLE_RESOURCE, Denied, Lock, LockStore, conflicts

if TYPE_CHECKING:
    from tests.contract.conftest import StateBackend

R1, R2 = "patient:1", "patient:2"
T0 = 1_700_000_000_000
TTL = 10_000


def granted(result: Lock | Denied) -> Lock:
    assert isinstance(result, Lock), f"expected a grant, got {result!r}"
    return result


def denied(result: Lock | Denied) -> Lock:
    assert isinstance(result, Denied), f"expected a denial, got {result!r}"
    return result.held_by


def keyset(locks: list[Lock]) -> set[tuple[str, str, str, int]]:
    return {
        (lock.resource_id, lock.target, lock.holder_user_id, lock.fencing_token) for lock in locks
    }


# --------------------------------------------------------------------------- grant and deny
async def test_grant_returns_the_lock(lock_store: LockStore) -> None:
    lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert (lock.resource_id, lock.target, lock.holder_user_id) == (R1, "diagnosis", "alice")
    assert lock.expires_at == T0 + TTL
    assert lock.fencing_token >= 1
    assert lock.lock_id
    assert await lock_store.locks(R1, T0) == [lock]
    assert await lock_store.held_by("alice", T0) == [lock]


async def test_same_target_held_by_another_is_denied_naming_the_holder(
    lock_store: LockStore,
) -> None:
    lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert denied(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0 + 1)) == lock
    assert await lock_store.locks(R1, T0 + 1) == [lock]


async def test_different_targets_and_resources_do_not_conflict(lock_store: LockStore) -> None:
    granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    granted(await lock_store.acquire(R1, "plan", "bob", TTL, T0))
    granted(await lock_store.acquire(R2, "diagnosis", "bob", TTL, T0))
    granted(await lock_store.acquire(R2, WHOLE_RESOURCE, "bob", TTL, T0))
    assert len(await lock_store.locks(R1, T0)) == 2


async def test_whole_resource_lock_blocks_every_target_of_others(lock_store: LockStore) -> None:
    whole = granted(await lock_store.acquire(R1, WHOLE_RESOURCE, "alice", TTL, T0))
    assert denied(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0)) == whole
    assert denied(await lock_store.acquire(R1, WHOLE_RESOURCE, "bob", TTL, T0)) == whole
    # The holder herself may still lock a field inside her whole-resource lock.
    granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))


async def test_any_field_lock_of_another_blocks_the_whole_resource(lock_store: LockStore) -> None:
    field_lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert denied(await lock_store.acquire(R1, WHOLE_RESOURCE, "bob", TTL, T0)) == field_lock
    granted(await lock_store.acquire(R1, WHOLE_RESOURCE, "alice", TTL, T0))


async def test_an_expired_lock_no_longer_conflicts(lock_store: LockStore) -> None:
    granted(await lock_store.acquire(R1, WHOLE_RESOURCE, "alice", TTL, T0))
    bob = granted(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0 + TTL))
    assert await lock_store.locks(R1, T0 + TTL) == [bob]


# --------------------------------------------------------------------------- refresh and fencing
async def test_reacquire_by_holder_refreshes_keeping_id_and_token(lock_store: LockStore) -> None:
    first = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    again = granted(await lock_store.acquire(R1, "diagnosis", "alice", 2 * TTL, T0 + 5))
    assert (again.lock_id, again.fencing_token) == (first.lock_id, first.fencing_token)
    assert again.expires_at == T0 + 5 + 2 * TTL
    assert await lock_store.locks(R1, T0 + 5) == [again]


async def test_fencing_tokens_strictly_increase_across_release_and_expiry(
    lock_store: LockStore,
) -> None:
    tokens = [granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0)).fencing_token]
    assert await lock_store.release(R1, "diagnosis", "alice", T0 + 1) is not None
    tokens.append(
        granted(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0 + 2)).fencing_token
    )
    await lock_store.pop_expired(T0 + 2 + TTL)
    tokens.append(
        granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0 + 3 * TTL)).fencing_token
    )
    # Taking over an expired lock that nobody swept yet is a new grant as well.
    tokens.append(
        granted(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0 + 5 * TTL)).fencing_token
    )
    assert tokens == sorted(set(tokens)), tokens


async def test_fencing_tokens_are_per_resource_and_target(lock_store: LockStore) -> None:
    a = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    b = granted(await lock_store.acquire(R1, "plan", "alice", TTL, T0))
    c = granted(await lock_store.acquire(R2, "diagnosis", "alice", TTL, T0))
    assert a.fencing_token == b.fencing_token == c.fencing_token


# --------------------------------------------------------------------------- extend and release
async def test_extend_by_holder_pushes_expiry(lock_store: LockStore) -> None:
    lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    extended = await lock_store.extend(R1, "diagnosis", "alice", 3 * TTL, T0 + TTL - 1)
    assert extended is not None
    assert (extended.lock_id, extended.fencing_token) == (lock.lock_id, lock.fencing_token)
    assert extended.expires_at == T0 + TTL - 1 + 3 * TTL
    assert await lock_store.locks(R1, T0 + 2 * TTL) == [extended]


async def test_extend_by_another_or_of_nothing_or_after_expiry_is_none(
    lock_store: LockStore,
) -> None:
    lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert await lock_store.extend(R1, "diagnosis", "bob", TTL, T0 + 1) is None
    assert await lock_store.extend(R1, "plan", "alice", TTL, T0 + 1) is None
    assert await lock_store.locks(R1, T0 + 1) == [lock]
    assert await lock_store.extend(R1, "diagnosis", "alice", TTL, T0 + TTL) is None


async def test_release_by_another_is_none_and_keeps_the_lock(lock_store: LockStore) -> None:
    lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert await lock_store.release(R1, "diagnosis", "bob", T0 + 1) is None
    assert await lock_store.locks(R1, T0 + 1) == [lock]


async def test_release_by_holder_returns_the_lock_once(lock_store: LockStore) -> None:
    lock = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert await lock_store.release(R1, "diagnosis", "alice", T0 + 1) == lock
    assert await lock_store.release(R1, "diagnosis", "alice", T0 + 2) is None
    assert await lock_store.locks(R1, T0 + 2) == []
    assert await lock_store.held_by("alice", T0 + 2) == []
    assert await lock_store.pop_expired(T0 + 10 * TTL) == []
    granted(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0 + 3))


async def test_release_after_expiry_is_none(lock_store: LockStore) -> None:
    granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    assert await lock_store.release(R1, "diagnosis", "alice", T0 + TTL) is None


# --------------------------------------------------------------------------- reads and expiry
async def test_locks_and_held_by_exclude_expired(lock_store: LockStore) -> None:
    short = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    long = granted(await lock_store.acquire(R1, "plan", "alice", 3 * TTL, T0))
    other = granted(await lock_store.acquire(R2, "plan", "alice", 3 * TTL, T0))
    granted(await lock_store.acquire(R2, "diagnosis", "bob", 3 * TTL, T0))
    assert keyset(await lock_store.locks(R1, T0 + TTL - 1)) == keyset([short, long])
    assert keyset(await lock_store.locks(R1, T0 + TTL)) == keyset([long])
    assert keyset(await lock_store.held_by("alice", T0 + TTL)) == keyset([long, other])
    assert await lock_store.held_by("carol", T0) == []


async def test_pop_expired_returns_each_expired_lock_exactly_once(lock_store: LockStore) -> None:
    a = granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    b = granted(await lock_store.acquire(R2, WHOLE_RESOURCE, "bob", 2 * TTL, T0))
    c = granted(await lock_store.acquire(R1, "plan", "carol", 5 * TTL, T0))
    assert await lock_store.pop_expired(T0 + TTL - 1) == []
    assert await lock_store.pop_expired(T0 + TTL) == [a]
    assert await lock_store.pop_expired(T0 + TTL) == []
    assert keyset(await lock_store.pop_expired(T0 + 3 * TTL)) == keyset([b])
    assert await lock_store.pop_expired(T0 + 3 * TTL) == []
    assert await lock_store.locks(R1, T0 + 3 * TTL) == [c]
    assert await lock_store.held_by("alice", T0) == []  # popped means gone, whatever the clock


async def test_pop_expired_reports_the_expiry_of_an_extended_lock_once(
    lock_store: LockStore,
) -> None:
    granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    extended = await lock_store.extend(R1, "diagnosis", "alice", 2 * TTL, T0 + 1)
    assert await lock_store.pop_expired(T0 + TTL) == []
    assert await lock_store.pop_expired(T0 + 1 + 2 * TTL) == [extended]
    assert await lock_store.pop_expired(T0 + 10 * TTL) == []


async def test_a_lock_taken_over_after_expiry_is_not_reported_as_expired(
    lock_store: LockStore,
) -> None:
    granted(await lock_store.acquire(R1, "diagnosis", "alice", TTL, T0))
    bob = granted(await lock_store.acquire(R1, "diagnosis", "bob", TTL, T0 + TTL))
    assert await lock_store.pop_expired(T0 + TTL) == []
    assert await lock_store.held_by("alice", T0) == []
    assert await lock_store.pop_expired(T0 + 2 * TTL) == [bob]


# --------------------------------------------------------------------------- several instances
async def test_concurrent_sweepers_share_out_expired_locks_disjointly(
    kv_backend: StateBackend,
) -> None:
    stores = [await kv_backend.locks(separate_client=True) for _ in range(5)]
    expected = set()
    for i in range(300):
        lock = granted(await stores[i % 5].acquire(f"patient:{i}", "f", f"user{i % 7}", TTL, T0))
        expected.add((lock.resource_id, lock.target, lock.lock_id))
    results = await asyncio.gather(*(store.pop_expired(T0 + TTL) for store in stores))
    seen = [(lock.resource_id, lock.target, lock.lock_id) for batch in results for lock in batch]
    assert len(seen) == len(set(seen)), "a lock was reported expired twice"
    assert set(seen) == expected


async def test_concurrent_acquires_of_one_lock_grant_exactly_one(kv_backend: StateBackend) -> None:
    stores = [await kv_backend.locks(separate_client=True) for _ in range(5)]
    results = await asyncio.gather(
        *(store.acquire(R1, WHOLE_RESOURCE, f"user{i}", TTL, T0) for i, store in enumerate(stores))
    )
    winners = [result for result in results if isinstance(result, Lock)]
    assert len(winners) == 1
    assert all(
        isinstance(r, Denied) and r.held_by == winners[0] for r in results if r is not winners[0]
    )


# --------------------------------------------------------------------------- property test
@dataclass
class ModelLock:
    holder: str
    token: int
    expires_at: int
    lock_id: str | None = None  # learned from the store on grant


@dataclass
class Model:
    """The lock rules written as plainly as possible, independent of any adapter."""

    now: int = T0
    stored: dict[tuple[str, str], ModelLock] = field(default_factory=dict)
    fencing: dict[tuple[str, str], int] = field(default_factory=dict)

    def live(self, resource: str) -> dict[str, ModelLock]:
        return {
            target: lock
            for (res, target), lock in self.stored.items()
            if res == resource and lock.expires_at > self.now
        }

    def acquire(self, res: str, target: str, user: str, ttl: int) -> tuple[str, ModelLock | None]:
        """("denied", None) | ("refreshed", lock) | ("granted", lock)."""
        live = self.live(res)
        if any(lk.holder != user and conflicts(t, target) for t, lk in live.items()):
            return "denied", None
        if target in live:
            live[target].expires_at = self.now + ttl
            return "refreshed", live[target]
        self.fencing[res, target] = self.fencing.get((res, target), 0) + 1
        lock = ModelLock(user, self.fencing[res, target], self.now + ttl)
        self.stored[res, target] = lock
        return "granted", lock

    def held(self, res: str, target: str, user: str) -> ModelLock | None:
        lock = self.live(res).get(target)
        return lock if lock is not None and lock.holder == user else None

    def pop_expired(self) -> set[tuple[str, str, str, int]]:
        due = [key for key, lock in self.stored.items() if lock.expires_at <= self.now]
        return {(res, t, self.stored.pop((res, t)).holder, 0) for res, t in due}


@dataclass(frozen=True)
class Acquire:
    res: str
    target: str
    user: str
    ttl: int


@dataclass(frozen=True)
class Extend:
    res: str
    target: str
    user: str
    ttl: int


@dataclass(frozen=True)
class Release:
    res: str
    target: str
    user: str


@dataclass(frozen=True)
class Advance:
    ms: int


@dataclass(frozen=True)
class ListLocks:
    res: str


@dataclass(frozen=True)
class HeldBy:
    user: str


@dataclass(frozen=True)
class PopExpired:
    pass


Operation = Acquire | Extend | Release | Advance | ListLocks | HeldBy | PopExpired

RESOURCES = st.sampled_from([R1, R2])
TARGETS = st.sampled_from([WHOLE_RESOURCE, "diagnosis", "plan"])
USERS = st.sampled_from(["alice", "bob", "carol"])
TTLS = st.integers(min_value=1, max_value=100)
ACQUIRES = st.builds(Acquire, RESOURCES, TARGETS, USERS, TTLS)
# Acquires weighted up so that sequences often hold several locks at once.
OPERATIONS: st.SearchStrategy[Operation] = st.one_of(
    ACQUIRES,
    ACQUIRES,
    ACQUIRES,
    st.builds(Extend, RESOURCES, TARGETS, USERS, TTLS),
    st.builds(Release, RESOURCES, TARGETS, USERS),
    st.builds(Advance, st.integers(min_value=0, max_value=30)),
    st.builds(ListLocks, RESOURCES),
    st.builds(HeldBy, USERS),
    st.just(PopExpired()),
)

Key = tuple[str, str, str, int]


def matches(lock: Lock, model: ModelLock, res: str, target: str) -> bool:
    """The store's lock is the model's: same place, holder, token, expiry and (once known) id."""
    expected = (res, target, model.holder, model.token, model.expires_at)
    actual = (
        lock.resource_id,
        lock.target,
        lock.holder_user_id,
        lock.fencing_token,
        lock.expires_at,
    )
    return actual == expected and model.lock_id in (None, lock.lock_id)


def model_keys(model: Model, *, res: str | None = None, user: str | None = None) -> set[Key]:
    return {
        (r, target, lock.holder, lock.expires_at)
        for (r, target), lock in model.stored.items()
        if lock.expires_at > model.now and res in (None, r) and user in (None, lock.holder)
    }


def store_keys(locks: list[Lock]) -> set[Key]:
    return {(lock.resource_id, lock.target, lock.holder_user_id, lock.expires_at) for lock in locks}


async def check_acquire(store: LockStore, model: Model, op: Acquire) -> None:
    result = await store.acquire(op.res, op.target, op.user, op.ttl, model.now)
    outcome, expected = model.acquire(op.res, op.target, op.user, op.ttl)
    if outcome == "denied":
        held = denied(result)
        blocker = model.live(op.res).get(held.target)
        assert blocker is not None, f"denied by {held}, which the model does not hold"
        assert held.holder_user_id != op.user
        assert conflicts(held.target, op.target)
        assert matches(held, blocker, op.res, held.target)
        return
    assert expected is not None
    lock = granted(result)
    assert matches(lock, expected, op.res, op.target), (outcome, lock, expected)
    expected.lock_id = lock.lock_id


async def check_extend(store: LockStore, model: Model, op: Extend) -> None:
    before = model.held(op.res, op.target, op.user)
    got = await store.extend(op.res, op.target, op.user, op.ttl, model.now)
    if before is None:
        assert got is None
        return
    before.expires_at = model.now + op.ttl
    assert got is not None
    assert matches(got, before, op.res, op.target)


async def check_release(store: LockStore, model: Model, op: Release) -> None:
    before = model.held(op.res, op.target, op.user)
    got = await store.release(op.res, op.target, op.user, model.now)
    if before is None:
        assert got is None
        return
    del model.stored[op.res, op.target]
    assert got is not None
    assert matches(got, before, op.res, op.target)


async def check_pop_expired(store: LockStore, model: Model) -> None:
    popped = await store.pop_expired(model.now)
    assert len(popped) == len({(lock.resource_id, lock.target) for lock in popped})
    reported = {(lock.resource_id, lock.target, lock.holder_user_id, 0) for lock in popped}
    assert reported == model.pop_expired()


async def check_step(store: LockStore, model: Model, op: Operation) -> None:
    match op:
        case Advance(ms):
            model.now += ms
        case Acquire():
            await check_acquire(store, model, op)
        case Extend():
            await check_extend(store, model, op)
        case Release():
            await check_release(store, model, op)
        case ListLocks(res):
            assert store_keys(await store.locks(res, model.now)) == model_keys(model, res=res)
        case HeldBy(user):
            assert store_keys(await store.held_by(user, model.now)) == model_keys(model, user=user)
        case PopExpired():
            await check_pop_expired(store, model)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=st.lists(OPERATIONS, min_size=10, max_size=60))
async def test_behaves_like_the_reference_model(
    kv_backend: StateBackend, operations: list[Operation]
) -> None:
    store = await kv_backend.locks(namespace=uuid.uuid4().hex)  # a fresh store per example
    model = Model()
    for op in operations:
        await check_step(store, model, op)


@pytest.mark.parametrize("target", ["*", "a|b", "ünïcode", "with:colons/and spaces"])
async def test_unusual_targets_round_trip(lock_store: LockStore, target: str) -> None:
    lock = granted(await lock_store.acquire(R1, target, "user|with|pipes", TTL, T0))
    assert lock.target == target
    assert lock.holder_user_id == "user|with|pipes"
    assert await lock_store.held_by("user|with|pipes", T0) == [lock]
    assert await lock_store.pop_expired(T0 + TTL) == [lock]
