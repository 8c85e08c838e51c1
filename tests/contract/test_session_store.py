"""SessionStore contract: every adapter (memory, Redis) must pass this suite unchanged.

Expiry runs on the adapters' real clocks (Redis judges by its own TIME), so the expiry tests use
a short TTL and poll against a deadline instead of sleeping a fixed time and hoping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from collabgate.sessions.port import SessionStore

if TYPE_CHECKING:
    from tests.contract.conftest import StateBackend

LONG = 60.0
SHORT = 0.5


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"condition not met within {within} s"
        await asyncio.sleep(0.05)


async def test_open_returns_the_users_live_count(session_store: SessionStore) -> None:
    assert await session_store.count("alice") == 0
    assert await session_store.open("alice", "c1", "i1", LONG) == 1
    assert await session_store.open("alice", "c2", "i1", LONG) == 2
    assert await session_store.open("bob", "c3", "i1", LONG) == 1
    assert await session_store.count("alice") == 2
    assert await session_store.count("bob") == 1


async def test_counts_span_instances(kv_backend: StateBackend) -> None:
    first, second = await kv_backend.sessions(), await kv_backend.sessions(separate_client=True)
    assert await first.open("alice", "c1", "instance-a", LONG) == 1
    assert await second.open("alice", "c2", "instance-b", LONG) == 2
    assert await first.count("alice") == 2
    await second.close_connection("alice", "c1")
    assert await first.count("alice") == 1


async def test_close_connection_forgets_it(session_store: SessionStore) -> None:
    await session_store.open("alice", "c1", "i1", LONG)
    await session_store.open("alice", "c2", "i1", LONG)
    await session_store.close_connection("alice", "c1")
    assert await session_store.count("alice") == 1
    assert await session_store.touch("c1", LONG) is False
    await session_store.close_connection("alice", "c1")  # twice is harmless
    await session_store.close_connection("alice", "never-opened")
    assert await session_store.count("alice") == 1


async def test_close_connection_of_another_user_changes_nothing(
    session_store: SessionStore,
) -> None:
    await session_store.open("alice", "c1", "i1", LONG)
    await session_store.close_connection("mallory", "c1")
    assert await session_store.count("alice") == 1
    assert await session_store.touch("c1", LONG) is True


async def test_touch_refreshes_only_live_sessions(session_store: SessionStore) -> None:
    await session_store.open("alice", "c1", "i1", LONG)
    assert await session_store.touch("c1", LONG) is True
    assert await session_store.touch("unknown", LONG) is False


async def test_reopening_a_connection_does_not_count_it_twice(session_store: SessionStore) -> None:
    await session_store.open("alice", "c1", "i1", LONG)
    assert await session_store.open("alice", "c1", "i1", LONG) == 1


async def test_sessions_expire_unless_touched(session_store: SessionStore) -> None:
    await session_store.open("alice", "kept", "i1", SHORT)
    await session_store.open("alice", "dropped", "i1", SHORT)
    assert await session_store.touch("kept", LONG) is True

    async def one_left() -> bool:
        return await session_store.count("alice") == 1

    await eventually(one_left)
    assert await session_store.touch("dropped", LONG) is False, "expired means gone"
    assert await session_store.touch("kept", LONG) is True
    assert await session_store.open("alice", "new", "i1", LONG) == 2


async def test_an_expired_session_can_be_opened_again(session_store: SessionStore) -> None:
    await session_store.open("alice", "c1", "i1", SHORT)

    async def gone() -> bool:
        return await session_store.count("alice") == 0

    await eventually(gone)
    assert await session_store.open("alice", "c1", "i1", LONG) == 1
    assert await session_store.touch("c1", LONG) is True


async def test_concurrent_opens_see_each_other(kv_backend: StateBackend) -> None:
    stores = [await kv_backend.sessions(separate_client=True) for _ in range(5)]
    counts = await asyncio.gather(
        *(store.open("alice", f"c{i}", f"i{i}", LONG) for i, store in enumerate(stores))
    )
    assert sorted(counts) == [1, 2, 3, 4, 5], "each open must see exactly the ones before it"
