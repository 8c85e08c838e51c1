"""Two gateway processes sharing Redis, RabbitMQ and PostgreSQL behave as one service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from pycrdt import Text

from collabgate.client import CollabClient, LockDenial, LockGrant
from tests.contract.test_postgres_specific import PostgresTestDatabase
from tests.e2e.conftest import REDIS_URL, delete_keys, require_service
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RESOURCE = "patient:shared-1"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess, str]]:
    require_service("Redis", "127.0.0.1", 6379)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    database = PostgresTestDatabase()
    url = await database.create()
    prefix = f"cgtest:{uuid.uuid4().hex}:"
    common = {
        "COLLABGATE_REDIS_URL": REDIS_URL,
        "COLLABGATE_REDIS_KEY_PREFIX": prefix,
        "COLLABGATE_AMQP_URL": AMQP_URL,
        "COLLABGATE_AMQP_EXCHANGE": f"cgtest.{uuid.uuid4().hex}",
        "COLLABGATE_DATABASE_URL": url,
        "COLLABGATE_LOCK_HOLDER_GRACE_SECONDS": "1",
        "COLLABGATE_PRESENCE_TTL_SECONDS": "3",
    }
    keys = tmp_path / "shared"  # one key pair: a token works on every instance
    first = GatewayProcess(keys, env={**common, "COLLABGATE_INSTANCE_ID": "gw-a"})
    second = GatewayProcess(keys, env={**common, "COLLABGATE_INSTANCE_ID": "gw-b"})
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        yield first, second, url
    finally:
        for process in (first, second):
            if process.process is not None and process.process.poll() is None:
                await asyncio.to_thread(process.terminate)
        delete_keys(prefix)
        await database.drop()


async def test_users_on_different_instances_collaborate(
    cluster: tuple[GatewayProcess, GatewayProcess, str],
) -> None:
    a, b, url = cluster
    async with (
        CollabClient(a.ws_url, a.token("alice", "surgeon"), reconnect=False) as alice,
        CollabClient(b.ws_url, b.token("bob", "nurse"), reconnect=False) as bob,
    ):
        await alice.join(RESOURCE)
        state = await bob.join(RESOURCE)
        assert [u["userId"] for u in state.users] == ["alice", "bob"]
        joined = await alice.wait_for(lambda e: e["type"] == "USER_JOINED")
        assert joined["user"]["userId"] == "bob"

        await alice.edit(RESOURCE, lambda doc: doc.get("content", type=Text).insert(0, "from A. "))
        await bob.wait_for(lambda e: e["type"] == "Y_UPDATE" and e["userId"] == "alice")
        await bob.edit(RESOURCE, lambda doc: doc.get("content", type=Text).insert(0, "from B. "))
        await alice.wait_for(lambda e: e["type"] == "Y_UPDATE" and e["userId"] == "bob")
        assert str(alice.text(RESOURCE)) == str(bob.text(RESOURCE))

        grant = await alice.acquire_lock(RESOURCE, target="plan")
        assert isinstance(grant, LockGrant)
        denial = await bob.acquire_lock(RESOURCE, target="plan")
        assert isinstance(denial, LockDenial)
        assert denial.holder_user_id == "alice"
        await bob.wait_for(lambda e: e["type"] == "LOCK_STATUS_CHANGED" and e["locked"])

        await alice.close()
        left = await bob.wait_for(lambda e: e["type"] == "USER_LEFT", timeout=10)
        assert left["userId"] == "alice"
        released = await bob.wait_for(
            lambda e: (
                e["type"] == "LOCK_STATUS_CHANGED" and e.get("reason") == "holder_disconnected"
            ),
            timeout=15,
        )
        assert released["target"] == "plan"

    connection = await asyncpg.connect(url)
    try:
        stored = await connection.fetchval(
            "SELECT count(*) FROM document_updates WHERE resource_id = $1", RESOURCE
        )
    finally:
        await connection.close()
    assert stored == 2


async def test_a_killed_instance_loses_no_acknowledged_edit(
    cluster: tuple[GatewayProcess, GatewayProcess, str],
) -> None:
    a, b, _ = cluster
    acknowledged: list[str] = []
    async with CollabClient(b.ws_url, b.token("observer"), reconnect=False) as observer:
        await observer.join(RESOURCE)
        writer = CollabClient(a.ws_url, a.token("writer"), reconnect=False)
        await writer.connect()
        await writer.join(RESOURCE)
        assert isinstance(await writer.acquire_lock(RESOURCE, target="notes"), LockGrant)
        for n in range(30):
            marker = f"<{n}>"
            await writer.edit(
                RESOURCE, lambda doc, m=marker: doc.get("content", type=Text).insert(0, m)
            )
            acknowledged.append(marker)
        a.kill()
        await writer.close()
        left = await observer.wait_for(lambda e: e["type"] == "USER_LEFT", timeout=20)
        assert left["userId"] == "writer"  # the dead instance's users are reaped from presence
        released = await observer.wait_for(
            lambda e: (
                e["type"] == "LOCK_STATUS_CHANGED" and e.get("reason") == "holder_disconnected"
            ),
            timeout=20,
        )
        assert (released["target"], released["holder"]) == ("notes", {"userId": "writer"})

    async with CollabClient(b.ws_url, b.token("writer"), reconnect=False) as again:
        await again.join(RESOURCE)
        text = str(again.text(RESOURCE))
    assert [m for m in acknowledged if m not in text] == []
