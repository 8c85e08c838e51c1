"""PostgreSQL (documents + audit) stops for ~10 s under traffic (pg_ctl stop -m fast) and starts
again: updates are refused (WS_5002) rather than acknowledged, audit events wait in the buffer,
and everything acknowledged or audited is in the database afterwards."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from collabgate.client import CollabClient, LockGrant
from collabgate.storage.migrate import migrate
from tests.faults.conftest import two_gateways
from tests.faults.harness import (
    OUTAGE_SECONDS,
    RESOURCE,
    audit_verify,
    dependency_flag,
    metric,
    missing,
    poll,
    ready,
    start_editors,
    stop_editors,
    stored_text,
)
from tests.support.services import PrivatePostgres

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_postgres_restart_under_traffic(
    tmp_path: Path, private_postgres: PrivatePostgres, shared_redis: str, shared_rabbitmq: str
) -> None:
    started = time.monotonic()
    url = private_postgres.url
    await migrate(url)
    async with two_gateways(
        tmp_path, redis_url=shared_redis, amqp_url=shared_rabbitmq, database_url=url
    ) as cluster:
        a, b = cluster.a, cluster.b
        prober = CollabClient(a.ws_url, a.token("prober", "surgeon"), reconnect=False)
        await prober.connect()
        await prober.join(RESOURCE)
        editors = await start_editors(cluster.gateways)
        late_clients: list[CollabClient] = []
        try:
            await poll(lambda: _true(all(len(e.acknowledged) >= 5 for e in editors)), 15, "ACKs")

            # --- outage ---------------------------------------------------------------------
            await asyncio.to_thread(private_postgres.stop)
            down_at = time.monotonic()

            async def degraded() -> bool:
                for gateway in cluster.gateways:
                    status, report = await ready(gateway)
                    if status != 503 or dependency_flag(report, "documents") is not False:
                        return False
                return True

            await poll(degraded, 15, "/ready to report the database down on both instances")
            await poll(
                lambda: _true(any(t > down_at for e in editors for t in e.refused_at)),
                15,
                "a Y_UPDATE refused while PostgreSQL is down",
            )
            acked_while_down_starts = {e.name: len(e.acknowledged) for e in editors}

            # Audited actions during the outage: a lock taken and released, a user connecting.
            grant = await prober.acquire_lock(RESOURCE, target="outage-plan")
            assert isinstance(grant, LockGrant)
            await prober.release_lock(RESOURCE, target="outage-plan")
            for n in range(3):
                late = CollabClient(b.ws_url, b.token(f"late{n}", "nurse"), reconnect=False)
                await late.connect()
                late_clients.append(late)
            await poll(
                lambda: _buffered(cluster.gateways),
                10,
                "collabgate_audit_buffer_events > 0 on both instances",
            )
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            acked_during = sum(
                len(e.acknowledged) - acked_while_down_starts[e.name] for e in editors
            )
            await asyncio.to_thread(private_postgres.start)
            up_at = time.monotonic()

            # --- recovery -------------------------------------------------------------------
            async def recovered() -> bool:
                for gateway in cluster.gateways:
                    status, _ = await ready(gateway)
                    if status != 200:
                        return False
                return True

            await poll(recovered, 30, "/ready 200 on both instances")
            ready_after = time.monotonic() - up_at
            counts = [len(e.acknowledged) for e in editors]
            await poll(
                lambda: _true(
                    all(len(e.acknowledged) > c + 3 for e, c in zip(editors, counts, strict=True))
                ),
                30,
                "edits to be acknowledged after recovery",
            )
            edits_after = time.monotonic() - up_at
            await poll(lambda: _drained(cluster.gateways), 30, "the audit buffer to drain")
        finally:
            await stop_editors(editors)

        for editor in editors:
            assert not editor.client.closed.is_set(), f"{editor.name} was disconnected"
        for editor in editors:
            await editor.client.sync(RESOURCE)
        acknowledged = [m for e in editors for m in e.acknowledged]
        for editor in editors:
            assert missing(acknowledged, str(editor.client.text(RESOURCE))) == [], editor.name
        assert missing(acknowledged, await stored_text(url)) == []
        for client in [prober, *late_clients, *(e.client for e in editors)]:
            await client.close()

    connection = await asyncpg.connect(url)
    try:
        locks = await connection.fetchval(
            "SELECT count(*) FROM audit_log WHERE event_type = 'LOCK_ACQUIRED' AND user_id = $1",
            "prober",
        )
        connected = await connection.fetchval(
            "SELECT count(*) FROM audit_log WHERE event_type = 'USER_CONNECTED'"
            " AND user_id LIKE 'late%'"
        )
    finally:
        await connection.close()
    assert locks >= 1, "the lock taken during the outage is not in the audit log"
    assert connected == 3, "the connections made during the outage are not in the audit log"
    result = await asyncio.to_thread(audit_verify, url)
    assert result.returncode == 0, result.stdout + result.stderr
    print(
        f"\npostgres restart: {len(acknowledged)} acked edits ({acked_during} acked while down),"
        f" refused {sum(len(e.refused_at) for e in editors)} Y_UPDATEs;"
        f" ready {ready_after:.1f} s and edits acked {edits_after:.1f} s after PostgreSQL was back;"
        f" took {time.monotonic() - started:.1f} s"
    )


async def _true(value: bool) -> bool:
    return value


async def _buffered(gateways) -> bool:  # type: ignore[no-untyped-def]
    for gateway in gateways:
        value = await metric(gateway, "collabgate_audit_buffer_events")
        if not value:
            return False
    return True


async def _drained(gateways) -> bool:  # type: ignore[no-untyped-def]
    for gateway in gateways:
        if await metric(gateway, "collabgate_audit_buffer_events") != 0:
            return False
    return True
