"""RabbitMQ (the room bus between instances) stops for ~10 s under traffic and starts again: edits
keep being acknowledged (the bus is not on the ACK path), cross-instance fan-out resumes by
itself, the edits made during the outage are published again, and without any SYNC every client
ends up holding every acknowledged update."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from collabgate.client import CollabClient
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
from tests.support.gateway_process import GatewayProcess
from tests.support.services import PrivateRabbitMQ

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


async def test_rabbitmq_restart_under_traffic(
    tmp_path: Path, private_rabbitmq: PrivateRabbitMQ, shared_redis: str, shared_database: str
) -> None:
    started = time.monotonic()
    async with two_gateways(
        tmp_path,
        redis_url=shared_redis,
        amqp_url=private_rabbitmq.url,
        database_url=shared_database,
    ) as cluster:
        editors = await start_editors(cluster.gateways)
        on_a = [e for e in editors if e.name.startswith("u0")]
        on_b = [e for e in editors if e.name.startswith("u1")]
        try:
            await poll(lambda: _true(all(len(e.acknowledged) >= 5 for e in editors)), 15, "ACKs")
            await poll(
                lambda: _crossed(on_a, on_b), 10, "cross-instance delivery before the outage"
            )

            # --- outage ---------------------------------------------------------------------
            await asyncio.to_thread(private_rabbitmq.stop)
            down_at = time.monotonic()
            counts = [len(e.acknowledged) for e in editors]

            async def degraded() -> bool:
                for gateway in cluster.gateways:
                    status, report = await ready(gateway)
                    if status != 503 or dependency_flag(report, "rabbitmq") is not False:
                        return False
                return True

            await poll(degraded, 15, "/ready to report rabbitmq down on both instances")
            for gateway in cluster.gateways:
                assert await metric(gateway, "collabgate_dependency_up", dependency="rabbitmq") == 0
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            during = [len(e.acknowledged) - c for e, c in zip(editors, counts, strict=True)]
            assert all(n > 0 for n in during), f"ACKs stopped while RabbitMQ was down: {during}"
            await asyncio.to_thread(private_rabbitmq.start)
            up_at = time.monotonic()

            # --- recovery -------------------------------------------------------------------
            async def recovered() -> bool:
                for gateway in cluster.gateways:
                    status, report = await ready(gateway)
                    if status != 200 or dependency_flag(report, "rabbitmq") is not True:
                        return False
                return True

            await poll(recovered, 40, "/ready 200 with rabbitmq up on both instances")
            ready_after = time.monotonic() - up_at
            # Fan-out resumes by itself: fresh watchers, joined now, receive Y_UPDATE frames
            # from the other instance's editors without any SYNC. (Whether those updates
            # integrate depends on the receiver having the updates they build on; the ones
            # published while the bus was down need a SYNC, checked below.)
            watchers = [
                await _watcher(cluster.a, "watch-a"),
                await _watcher(cluster.b, "watch-b"),
            ]
            await asyncio.gather(
                watchers[0].wait_for(
                    lambda e: e["type"] == "Y_UPDATE" and str(e.get("userId")).startswith("u1"),
                    timeout=30,
                ),
                watchers[1].wait_for(
                    lambda e: e["type"] == "Y_UPDATE" and str(e.get("userId")).startswith("u0"),
                    timeout=30,
                ),
            )
            fanout_after = time.monotonic() - up_at
        finally:
            await stop_editors(editors)

        for editor in editors:
            assert not editor.client.closed.is_set(), f"{editor.name} was disconnected"
            assert editor.client.reconnects == 0
        # No SYNC: the edits whose publish failed during the outage are published again.
        acknowledged = [m for e in editors for m in e.acknowledged]

        async def converged() -> bool:
            texts = {str(e.client.text(RESOURCE)) for e in editors}
            return len(texts) == 1 and not missing(acknowledged, texts.pop())

        async def republished() -> list[float | None]:
            return [
                await metric(g, "collabgate_bus_republished_total", result="sent")
                for g in cluster.gateways
            ]

        try:
            await poll(converged, 30, "every client to hold every acknowledged update")
        except TimeoutError:
            lacking = {
                e.name: missing(acknowledged, str(e.client.text(RESOURCE)))[:5] for e in editors
            }
            repaired = [
                await metric(g, "collabgate_bus_gaps_repaired_total") for g in cluster.gateways
            ]
            raise AssertionError(
                f"without SYNC, clients lack acknowledged updates (first 5 each): {lacking};"
                f" edits published again per instance {await republished()}, gaps repaired"
                f" {repaired}"
            ) from None

        # Each instance publishes again what it could not publish (the watchers' joins, which
        # read the store, may have closed the clients' gaps first).
        async def published_again() -> bool:
            return all(n is not None and n > 0 for n in await republished())

        await poll(published_again, 15, "each instance to publish its outage's edits again")
        stored_lacks = missing(acknowledged, await stored_text(cluster.database_url))
        assert stored_lacks == [], f"acknowledged updates missing from PostgreSQL: {stored_lacks}"
        for client in [*watchers, *(e.client for e in editors)]:
            await client.close()

    result = await asyncio.to_thread(audit_verify, shared_database)
    assert result.returncode == 0, result.stdout + result.stderr
    print(
        f"\nrabbitmq restart: {len(acknowledged)} acked edits ({sum(during)} while down);"
        f" ready {ready_after:.1f} s and fan-out {fanout_after:.1f} s after RabbitMQ was back;"
        f" took {time.monotonic() - started:.1f} s"
    )


async def _true(value: bool) -> bool:
    return value


async def _watcher(gateway: GatewayProcess, name: str) -> CollabClient:
    client = CollabClient(gateway.ws_url, gateway.token(name, "nurse"), reconnect=False)
    await client.connect()
    await client.join(RESOURCE)
    return client


async def _delivered(on_a, on_b, watchers) -> bool:  # type: ignore[no-untyped-def]
    """A marker acknowledged now on each instance reaches the other instance's watcher."""
    watch_a, watch_b = watchers
    for senders, receiver in ((on_a, watch_b), (on_b, watch_a)):
        for sender in senders:
            if not sender.acknowledged:
                return False
            if sender.acknowledged[-1] not in str(receiver.text(RESOURCE)):
                return False
    return True


async def _crossed(on_a, on_b) -> bool:  # type: ignore[no-untyped-def]
    """The newest acknowledged marker of every editor is in the other instance's clients' docs."""
    for senders, receivers in ((on_a, on_b), (on_b, on_a)):
        for sender in senders:
            if not sender.acknowledged:
                return False
            marker = sender.acknowledged[-1]
            for receiver in receivers:
                if marker not in str(receiver.client.text(RESOURCE)):
                    return False
    return True
