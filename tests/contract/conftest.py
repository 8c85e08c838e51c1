"""Fixtures for the contract suites: one suite per port, run unchanged against every adapter.

Redis-backed fixtures need a Redis on ``COLLABGATE_TEST_REDIS_URL`` (default
redis://127.0.0.1:6379/0). When it is not reachable they skip, except under ``CI=true`` where a
missing Redis is a failure (so CI can never pass by skipping). Every test gets its own key prefix
``cgtest:{uuid}:`` and its keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Literal, TypeVar

import pytest
import redis.asyncio as aioredis

from collabgate.locks.memory import MemoryLockStore
from collabgate.locks.port import LockStore
from collabgate.locks.redis import RedisLockStore
from collabgate.ops.redis_support import RedisStartupError, create_redis
from collabgate.presence.memory import MemoryPresenceStore
from collabgate.presence.port import PresenceStore
from collabgate.presence.redis import RedisPresenceStore
from collabgate.sessions.memory import MemorySessionStore
from collabgate.sessions.port import SessionStore
from collabgate.sessions.redis import RedisSessionStore
from tests.support.requirements import unavailable

TEST_REDIS_URL = os.environ.get("COLLABGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BackendKind = Literal["memory", "redis"]
T = TypeVar("T")


class StateBackend:
    """Makes lock/presence/session stores of one kind that share state within a namespace.

    Memory stores of one namespace are one object (the embedded adapters are single-instance);
    Redis stores of one namespace share a key prefix, each optionally on its own client, which is
    how several gateway instances see each other.
    """

    def __init__(self, kind: BackendKind, base_prefix: str) -> None:
        self.kind = kind
        self.base_prefix = base_prefix
        self._clients: list[aioredis.Redis] = []
        self._memory: dict[tuple[str, str], object] = {}

    @property
    def is_redis(self) -> bool:
        return self.kind == "redis"

    async def client(self, *, separate: bool = False) -> aioredis.Redis:
        """The backend's Redis client, or (``separate``) a new one, as another instance has."""
        if separate or not self._clients:
            self._clients.append(await connect_test_redis())
        return self._clients[-1] if separate else self._clients[0]

    def prefix(self, namespace: str) -> str:
        return f"{self.base_prefix}{namespace}:"

    async def locks(self, namespace: str = "main", *, separate_client: bool = False) -> LockStore:
        if not self.is_redis:
            return self._shared_memory("locks", namespace, MemoryLockStore)
        client = await self.client(separate=separate_client)
        return RedisLockStore(client, prefix=self.prefix(namespace))

    async def presence(
        self,
        namespace: str = "main",
        *,
        instance_id: str = "instance-a",
        member_ttl_seconds: float = 30.0,
        separate_client: bool = False,
    ) -> PresenceStore:
        if not self.is_redis:
            return self._shared_memory("presence", namespace, MemoryPresenceStore)
        client = await self.client(separate=separate_client)
        return RedisPresenceStore(
            client,
            prefix=self.prefix(namespace),
            instance_id=instance_id,
            member_ttl_seconds=member_ttl_seconds,
        )

    async def sessions(
        self, namespace: str = "main", *, separate_client: bool = False
    ) -> SessionStore:
        if not self.is_redis:
            return self._shared_memory("sessions", namespace, MemorySessionStore)
        client = await self.client(separate=separate_client)
        return RedisSessionStore(client, prefix=self.prefix(namespace))

    async def cleanup(self) -> None:
        """Delete every key under the base prefix and close the clients."""
        if self._clients:
            client = self._clients[0]
            keys = [key async for key in client.scan_iter(match=self.base_prefix + "*", count=500)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
        for client in self._clients:
            await client.aclose()

    def _shared_memory(self, port: str, namespace: str, factory: type[T]) -> T:
        store = self._memory.setdefault((port, namespace), factory())
        assert isinstance(store, factory)
        return store


async def connect_test_redis() -> aioredis.Redis:
    """A client for the test Redis; skip (or fail under CI=true) when there is none."""
    try:
        return await create_redis(TEST_REDIS_URL)
    except RedisStartupError as exc:
        unavailable(f"Redis contract tests need a Redis at {TEST_REDIS_URL}: {exc}")


async def _backend(kind: BackendKind) -> AsyncIterator[StateBackend]:
    backend = StateBackend(kind, f"cgtest:{uuid.uuid4().hex}:")
    if backend.is_redis:
        await backend.client()  # connect eagerly, so a missing Redis skips (or fails) up front
    try:
        yield backend
    finally:
        await backend.cleanup()


@pytest.fixture(params=["memory", "redis"])
async def kv_backend(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    """The adapter family under test."""
    async for backend in _backend(request.param):
        yield backend


@pytest.fixture
async def redis_kv_backend() -> AsyncIterator[StateBackend]:
    """The Redis family alone, for what only it does (several instances, liveness)."""
    async for backend in _backend("redis"):
        yield backend


@pytest.fixture
async def lock_store(kv_backend: StateBackend) -> AsyncIterator[LockStore]:
    store = await kv_backend.locks()
    yield store
    await store.close()


@pytest.fixture
async def presence_store(kv_backend: StateBackend) -> AsyncIterator[PresenceStore]:
    store = await kv_backend.presence()
    yield store
    await store.close()


@pytest.fixture
async def session_store(kv_backend: StateBackend) -> AsyncIterator[SessionStore]:
    store = await kv_backend.sessions()
    yield store
    await store.close()
