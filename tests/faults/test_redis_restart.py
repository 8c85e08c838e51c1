"""Redis (sessions, presence, locks) stops for ~10 s under traffic and comes back on the same port."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from collabgate.client import CollabClient, LockGrant
from collabgate.client.errors import ProtocolError
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
from tests.support.services import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


async def _refused_with_5002(call) -> bool:  # type: ignore[no-untyped-def]
    try:
        await call()
    except ProtocolError as exc:
        if exc.code != "WS_5002":
            raise AssertionError(f"expected WS_5002 while Redis is down, got {exc}") from exc
        return True
    return False


async def test_redis_restart_under_traffic(
    tmp_path: Path, private_redis: PrivateRedis, shared_rabbitmq: str, shared_database: str
) -> None:
    started = time.monotonic()
    async with two_gateways(
        tmp_path,
        redis_url=private_redis.url,
        amqp_url=shared_rabbitmq,
        database_url=shared_database,
    ) as cluster:
        a, b = cluster.a, cluster.b
        prober = CollabClient(a.ws_url, a.token("prober", "surgeon"), reconnect=False)
        joiner = CollabClient(b.ws_url, b.token("joiner", "nurse"), reconnect=False)
        await prober.connect()
        await joiner.connect()
        await prober.join(RESOURCE)
        editors = await start_editors(cluster.gateways)
        try:
            await poll(
                lambda: _true(all(len(e.acknowledged) >= 5 for e in editors)), 15, "first ACKs"
            )
            for gateway in cluster.gateways:
                assert await metric(gateway, "collabgate_dependency_up", dependency="redis") == 1

            # --- outage ---------------------------------------------------------------------
            await asyncio.to_thread(private_redis.stop)
            down_at = time.monotonic()

            async def degraded() -> bool:
                for gateway in cluster.gateways:
                    status, report = await ready(gateway)
                    if status != 503 or dependency_flag(report, "redis") is not False:
                        return False
                return True

            await poll(degraded, 10, "/ready to report redis down on both instances")
            await poll(lambda: _all_metric(cluster.gateways, 0.0), 10, "dependency_up{redis} == 0")
            await poll(
                lambda: _refused_with_5002(lambda: prober.acquire_lock(RESOURCE, target="plan")),
                10,
                "LOCK_ACQUIRE refused with WS_5002",
            )
            await poll(
                lambda: _refused_with_5002(lambda: joiner.join("patient:faults-other")),
                10,
                "JOIN refused with WS_5002",
            )
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            await asyncio.to_thread(private_redis.start)
            up_at = time.monotonic()

            # --- recovery -------------------------------------------------------------------
            async def recovered() -> bool:
                for gateway in cluster.gateways:
                    status, report = await ready(gateway)
                    if status != 200 or dependency_flag(report, "redis") is not True:
                        return False
                return True

            await poll(recovered, 20, "/ready 200 with redis up on both instances")
            await poll(lambda: _all_metric(cluster.gateways, 1.0), 10, "dependency_up{redis} == 1")

            async def lock_granted() -> bool:
                try:
                    return isinstance(await prober.acquire_lock(RESOURCE, target="plan"), LockGrant)
                except ProtocolError:
                    return False

            # The Redis circuit breaker backs off exponentially (up to 30 s) while Redis is
            # down, so requests may be refused for a while after /ready already says up.
            await poll(lock_granted, 35, "LOCK_ACQUIRE to be granted again")
            lock_after = time.monotonic() - up_at

            async def joined() -> bool:
                try:
                    await joiner.join("patient:faults-other")
                except ProtocolError:
                    return False
                return True

            await poll(joined, 35, "JOIN to work again")
            join_after = time.monotonic() - up_at
            counts = [len(e.acknowledged) for e in editors]
            await poll(
                lambda: _true(
                    all(len(e.acknowledged) > c + 3 for e, c in zip(editors, counts, strict=True))
                ),
                15,
                "edits to be acknowledged after recovery",
            )
        finally:
            await stop_editors(editors)

        # Nobody had to reconnect: the /ws sockets survived the outage.
        for editor in editors:
            assert not editor.client.closed.is_set(), f"{editor.name} was disconnected"
            assert editor.client.reconnects == 0
        assert not prober.closed.is_set()
        assert not joiner.closed.is_set()

        # Converge, then compare.
        for editor in editors:
            await editor.client.sync(RESOURCE)
        texts = {e.name: str(e.client.text(RESOURCE)) for e in editors}
        acknowledged = [m for e in editors for m in e.acknowledged]
        for name, text in texts.items():
            assert missing(acknowledged, text) == [], f"{name} lacks acknowledged updates"
        assert missing(acknowledged, await stored_text(cluster.database_url)) == []

        for client in [prober, joiner, *(e.client for e in editors)]:
            await client.close()

    result = await asyncio.to_thread(audit_verify, shared_database)
    assert result.returncode == 0, result.stdout + result.stderr
    refusals = {c: sum(e.refusals.get(c, 0) for e in editors) for e in editors for c in e.refusals}
    print(
        f"\nredis restart: {sum(len(e.acknowledged) for e in editors)} acked edits,"
        f" refused Y_UPDATEs {refusals}; lock granted {lock_after:.1f} s and JOIN ok"
        f" {join_after:.1f} s after Redis was back; took {time.monotonic() - started:.1f} s"
    )


async def _true(value: bool) -> bool:
    return value


async def _all_metric(gateways, value: float) -> bool:  # type: ignore[no-untyped-def]
    for gateway in gateways:
        if await metric(gateway, "collabgate_dependency_up", dependency="redis") != value:
            return False
    return True
