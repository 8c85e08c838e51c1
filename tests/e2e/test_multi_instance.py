"""Two gateway processes sharing Redis, RabbitMQ and PostgreSQL behave as one service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from pycrdt import Text

from collabgate.client import CollabClient, LockDenial, LockGrant
from tests.e2e.conftest import gateway_cluster
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e
RESOURCE = "patient:shared-1"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess, str]]:
    async with gateway_cluster(tmp_path, count=2) as started:
        first, second = started.gateways
        yield first, second, started.database_url


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
