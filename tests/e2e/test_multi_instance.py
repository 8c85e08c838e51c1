"""Two gateway processes sharing Redis, RabbitMQ and PostgreSQL behave as one service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pycrdt import Doc, Text

from collabgate.bus.port import RoomEvent
from collabgate.bus.rabbitmq import RabbitMqBus
from collabgate.client import CollabClient, LockDenial, LockGrant
from collabgate.documents.postgres import PostgresDocumentStore
from collabgate.storage.postgres import PostgresDatabase
from tests.e2e.conftest import AMQP_URL, gateway_cluster
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


async def test_editors_on_two_instances_typing_at_once_are_all_stored_and_audited(
    cluster: tuple[GatewayProcess, GatewayProcess, str],
) -> None:
    """Each instance numbers the room's edits from its own copy, so the two give many edits the
    same revision. Every edit is still acknowledged, each under a revision of its own, stored,
    and audited under the revision its ACK names; every copy ends with the same text."""
    a, b, url = cluster
    editors = [
        CollabClient(gateway.ws_url, gateway.token(f"editor-{n}"), reconnect=False)
        for n, gateway in enumerate((a, b, a, b))
    ]
    try:
        for editor in editors:
            await editor.connect()
            await editor.join(RESOURCE)

        async def type_into(editor: CollabClient, n: int) -> list[int]:
            return [
                await editor.edit(
                    RESOURCE, lambda doc, m=f"<{n}.{k}>": doc.get("content", type=Text).insert(0, m)
                )
                for k in range(25)
            ]

        acks = await asyncio.gather(*(type_into(e, n) for n, e in enumerate(editors)))
        revisions = sorted(r for per_editor in acks for r in per_editor)
        assert len(set(revisions)) == 100, "two edits were acknowledged under one revision"
        for editor in editors:  # every editor's revisions rise in the order it typed
            assert acks[editors.index(editor)] == sorted(acks[editors.index(editor)])
        async with CollabClient(b.ws_url, b.token("reader"), reconnect=False) as reader:
            await reader.join(RESOURCE)
            text = str(reader.text(RESOURCE))
        assert all(f"<{n}.{k}>" in text for n in range(4) for k in range(25))
        for editor in editors:
            await editor.wait_for(lambda e, c=editor: str(c.text(RESOURCE)) == text, timeout=10)
        # The two instances did give edits the same revision (else this test proves nothing).
        assert sum([await revision_conflicts(gateway) for gateway in (a, b)]) > 0
    finally:
        for editor in editors:
            await editor.close()

    connection = await asyncpg.connect(url)
    try:
        stored = await connection.fetch(
            "SELECT revision FROM document_updates WHERE resource_id = $1", RESOURCE
        )
        audited = await connection.fetch(
            "SELECT (details::jsonb->>'revision')::bigint FROM audit_log"
            " WHERE event_type = 'DOCUMENT_UPDATED' AND resource_id = $1",
            RESOURCE,
        )
    finally:
        await connection.close()
    assert sorted(row[0] for row in stored) == revisions
    assert sorted(row[0] for row in audited) == revisions


async def revision_conflicts(gateway: GatewayProcess) -> float:
    return await metric_value(gateway, "collabgate_document_revision_conflicts_total")


async def metric_value(gateway: GatewayProcess, name: str) -> float:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        metrics = (await http.get("/metrics")).text
    (line,) = [line for line in metrics.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


async def test_an_edit_the_broker_lost_reaches_the_room_from_the_store(
    cluster: tuple[GatewayProcess, GatewayProcess, str],
) -> None:
    """A third instance stored two edits, but the broker lost the room event of the first (a
    restart drops what its queues held). Its second reaches the room on the bus, builds on the
    first, and would stay pending in every client's Y.js; the gateway reads the first from
    PostgreSQL and sends it to the room."""
    a, _, url = cluster
    typed: Doc[Any] = Doc()
    content = typed.get("content", type=Text)
    state = typed.get_state()
    content.insert(0, "BP ")
    lost = typed.get_update(state)
    state = typed.get_state()
    content.insert(3, "120/80")
    relayed = typed.get_update(state)
    async with CollabClient(a.ws_url, a.token("reader"), reconnect=False) as reader:
        await reader.join(RESOURCE)
        database = PostgresDatabase(url, health_check_interval=None)
        await database.open()
        bus = RabbitMqBus(AMQP_URL, exchange=a.env["COLLABGATE_AMQP_EXCHANGE"])
        try:
            documents = PostgresDocumentStore(database)
            await documents.append(RESOURCE, 1, lost)
            await documents.append(RESOURCE, 2, relayed)
            await bus.start("gw-x", ignore_room_event)
            await bus.publish(RoomEvent(RESOURCE, "gw-x", "", relayed))
            event = await reader.wait_for(lambda e: e["type"] == "Y_UPDATE", timeout=10)
        finally:
            await bus.close()
            await database.close()
        assert event["userId"] is None
        assert str(reader.text(RESOURCE)) == "BP 120/80"
    assert await revision_conflicts(a) == 0  # nothing else was going on
    assert await metric_value(a, "collabgate_bus_gaps_repaired_total") == 1


async def ignore_room_event(event: RoomEvent) -> None:
    """The test's own bus instance receives the room's events too; it has nothing to do."""
