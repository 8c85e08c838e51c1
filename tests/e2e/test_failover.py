"""Failover behind HAProxy: three gateway instances (shared Redis, RabbitMQ, PostgreSQL) behind a
real HAProxy running deploy/haproxy/haproxy.cfg itself, its parameters (ports, backend addresses,
health-check interval) set through the environment.

* ``kill -9`` of the busiest instance while four editors type through HAProxy: its clients
  reconnect through HAProxy to the survivors, no acknowledged edit is lost (clients, a fresh
  reader, PostgreSQL rows), the lock of a user who does not come back is released after the
  presence TTL and the grace period, the dead connections leave the presence list, and the audit
  chain verifies.
* SIGTERM of one instance: its clients get SERVER_SHUTDOWN and move to the others, HAProxy marks
  it down, nothing acknowledged is lost.

Every wait is bounded: ``wait_for`` with a timeout, or a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from collabgate.client import CollabClient, LockGrant
from collabgate.client.models import Frame
from tests.e2e.conftest import Cluster, gateway_cluster
from tests.faults.harness import (
    RESOURCE,
    Editor,
    audit_verify,
    metric,
    missing,
    poll,
    stop_editors,
    stored_text,
)
from tests.support.gateway_process import GatewayProcess
from tests.support.haproxy_process import REFERENCE_CONFIG, HAProxyProcess
from tests.support.requirements import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

PRESENCE_TTL_SECONDS = 3.0  # gateway_cluster's COLLABGATE_PRESENCE_TTL_SECONDS
GRACE_SECONDS = 1.0  # gateway_cluster's COLLABGATE_LOCK_HOLDER_GRACE_SECONDS
RECONNECT_AFTER_MS = 200
GATEWAY_ENV = {
    # No compaction during the test, so every stored update is a row to count.
    "COLLABGATE_COMPACTION_THRESHOLD": "100000",
    "COLLABGATE_SHUTDOWN_RECONNECT_AFTER_MS": str(RECONNECT_AFTER_MS),
}
# The reference config's health checks, shortened: a dead instance is out after ~0.4 s. Fewer
# connections than in production: HAProxy needs ~2 file descriptors per connection and refuses to
# start when it cannot raise its limit that far (an unprivileged or containerised test run).
HAPROXY_ENV = {
    "COLLABGATE_LB_MAXCONN": "2000",
    "COLLABGATE_LB_CHECK_INTER": "200ms",
    "COLLABGATE_LB_CHECK_FALL": "2",
    "COLLABGATE_LB_CHECK_RISE": "1",
}
MARKER = re.compile(r"<e\d+:\d+>")


@dataclass
class Balanced:
    cluster: Cluster
    haproxy: HAProxyProcess

    @property
    def gateways(self) -> list[GatewayProcess]:
        return self.cluster.gateways

    def server_name(self, gateway: GatewayProcess) -> str:
        """The HAProxy server line of an instance (gw1, gw2, gw3, as in haproxy.cfg)."""
        return f"gw{self.gateways.index(gateway) + 1}"

    def client(self, user: str, *, reconnect: bool = True) -> CollabClient:
        """A client connecting through HAProxy, reconnecting quickly when its socket drops."""
        return CollabClient(
            self.haproxy.ws_url,
            self.gateways[0].token(user, "nurse"),
            reconnect=reconnect,
            backoff_initial=0.05,
            backoff_max=0.5,
            open_timeout=5,
        )


@pytest.fixture
async def balanced(tmp_path: Path) -> AsyncIterator[Balanced]:
    binary = require_binary("haproxy")
    async with gateway_cluster(tmp_path, count=3, env=GATEWAY_ENV) as cluster:
        proxy = HAProxyProcess(
            binary,
            [f"127.0.0.1:{g.port}" for g in cluster.gateways],
            tmp_path / "haproxy",
            env=HAPROXY_ENV,
        )
        try:
            await asyncio.to_thread(proxy.start)

            async def all_up() -> bool:
                states = await asyncio.to_thread(proxy.server_states)
                return len(states) == 3 and all(s == ("UP", "L7OK") for s in states.values())

            await poll(all_up, 10, "HAProxy to see every instance pass /ready")
            yield Balanced(cluster, proxy)
        finally:
            proxy.stop()
            # Shown by pytest only when the test failed.
            print("--- haproxy (last 40 lines)\n" + "\n".join(proxy.lines[-40:]))
            for gateway in cluster.gateways:
                name = gateway.env.get("COLLABGATE_INSTANCE_ID")
                print(f"--- {name} (last 40 lines)\n" + "\n".join(gateway.lines[-40:]))


def test_reference_config_is_valid_with_its_defaults() -> None:
    binary = require_binary("haproxy")
    result = subprocess.run(
        [binary, "-c", "-f", str(REFERENCE_CONFIG)],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},  # none of the COLLABGATE_LB_* variables
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr


# --- helpers ---------------------------------------------------------------------------------------


async def home_of(gateways: list[GatewayProcess], client: CollabClient) -> GatewayProcess:
    """The instance serving the client's current connection: the one that logged its id."""
    connection_id = client.connection_id
    assert connection_id is not None
    found: list[GatewayProcess] = []

    async def logged() -> bool:
        found[:] = [g for g in gateways if g.logs_containing(connection_id)]
        return bool(found)

    await poll(logged, 5, f"a gateway log line with connection {connection_id}", interval=0.05)
    assert len(found) == 1
    return found[0]


async def connections(gateways: list[GatewayProcess]) -> list[float]:
    """``websocket_connections_total`` of each instance."""
    return [await metric(g, "websocket_connections_total") or 0.0 for g in gateways]


async def connect_editors(balanced: Balanced, count: int) -> list[Editor]:
    """Editors connected one after another through HAProxy (so leastconn spreads them)."""
    editors = []
    for i in range(count):
        client = balanced.client(f"e{i}")
        await client.connect()
        await client.join(RESOURCE)
        editors.append(Editor(f"e{i}", client))
    return editors


async def server_down(balanced: Balanced, gateway: GatewayProcess) -> tuple[str, str]:
    """Wait (bounded) until HAProxy reports the instance DOWN; its (status, check status)."""
    name = balanced.server_name(gateway)
    state: list[tuple[str, str]] = []

    async def down() -> bool:
        state[:] = [(await asyncio.to_thread(balanced.haproxy.server_states))[name]]
        return state[0][0] == "DOWN"

    await poll(down, 10, f"HAProxy to mark {name} DOWN", interval=0.05)
    return state[0]


async def all_ack_more(editors: list[Editor], than: dict[str, int], more: int = 5) -> None:
    await poll(
        lambda: _true(all(len(e.acknowledged) >= than[e.name] + more for e in editors)),
        20,
        f"{more} more acknowledged edits from every editor",
    )


async def _true(value: bool) -> bool:
    return value


def count_events(client: CollabClient) -> collections.Counter[str]:
    """Count the client's events by type from now on."""
    counts: collections.Counter[str] = collections.Counter()

    def note(frame: Frame) -> None:
        counts[str(frame.get("type"))] += 1

    client.on_event = note
    return counts


async def stored_rows(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        rows: int = await connection.fetchval(
            "SELECT count(*) FROM document_updates WHERE resource_id = $1", RESOURCE
        )
        snapshots: int = await connection.fetchval(
            "SELECT count(*) FROM document_snapshots WHERE resource_id = $1", RESOURCE
        )
    finally:
        await connection.close()
    assert snapshots == 0  # compaction is off: every update is its own row
    return rows


async def check_nothing_lost(balanced: Balanced, editors: list[Editor]) -> list[str]:
    """Every acknowledged marker, exactly once, in every editor's document (after SYNC), in a
    fresh reader's joined through HAProxy, and in PostgreSQL; the rows cover every ACK. Returns
    the presence list (user ids) the reader saw."""
    acknowledged = [m for e in editors for m in e.acknowledged]
    for editor in editors:
        await editor.client.sync(RESOURCE)
        assert missing(acknowledged, str(editor.client.text(RESOURCE))) == [], editor.name
    async with balanced.client("reader", reconnect=False) as reader:
        state = await reader.join(RESOURCE)
        text = str(reader.text(RESOURCE))
    # Exactly the acknowledged markers, each once: resent updates were not applied twice.
    assert sorted(MARKER.findall(text)) == sorted(acknowledged)
    stored = await stored_text(balanced.cluster.database_url)
    assert sorted(MARKER.findall(stored)) == sorted(acknowledged)
    assert await stored_rows(balanced.cluster.database_url) >= len(acknowledged)
    return sorted(u["userId"] for u in state.users)


# --- the tests -------------------------------------------------------------------------------------


async def test_kill_9_of_the_busiest_instance_loses_nothing(balanced: Balanced) -> None:
    gateways = balanced.gateways
    editors = await connect_editors(balanced, 4)
    observer: CollabClient | None = None
    holder: CollabClient | None = None
    try:
        homes = {e.name: await home_of(gateways, e.client) for e in editors}
        counts = await connections(gateways)
        assert sorted(counts) == [1, 1, 2]  # leastconn spread the four editors
        victim = gateways[counts.index(max(counts))]
        survivors = [g for g in gateways if g is not victim]
        moved = [e for e in editors if homes[e.name] is victim]
        stayed = [e for e in editors if homes[e.name] is not victim]

        # Pinned to known instances (through HAProxy, leastconn would choose): an observer on a
        # survivor, and on the victim a user holding a lock who will not come back.
        observer = CollabClient(
            survivors[0].ws_url, survivors[0].token("observer"), reconnect=False
        )
        await observer.connect()
        await observer.join(RESOURCE)
        holder = CollabClient(victim.ws_url, victim.token("holder", "surgeon"), reconnect=False)
        await holder.connect()
        await holder.join(RESOURCE)
        assert isinstance(await holder.acquire_lock(RESOURCE, target="plan"), LockGrant)

        events = {e.name: count_events(e.client) for e in editors}
        for editor in editors:
            editor.start()
        await poll(lambda: _true(all(len(e.acknowledged) >= 5 for e in editors)), 20, "first ACKs")
        counts = await connections(gateways)
        assert counts[gateways.index(victim)] == max(counts) == 3  # 2 editors + the lock holder

        marks = {e.name: e.client.event_count for e in editors}
        acked_at_kill = {e.name: len(e.acknowledged) for e in editors}
        killed_at = time.monotonic()
        victim.kill()

        # The victim's clients reconnect through HAProxy, to a survivor.
        for editor in moved:
            await editor.client.wait_for(
                lambda ev: ev["type"] == "CLIENT_RECONNECTED", timeout=20, after=marks[editor.name]
            )
            assert editor.client.url == balanced.haproxy.ws_url
            assert await home_of(survivors, editor.client) in survivors
        reconnected_in = time.monotonic() - killed_at
        status, check = await server_down(balanced, victim)
        down_in = time.monotonic() - killed_at
        assert check.startswith("L4"), check  # the dead instance refuses the check's connection
        assert [e.client.reconnects for e in stayed] == [0] * len(stayed)

        # The holder never comes back: presence drops it and its lock goes, within the presence
        # TTL (the dead instance is noticed) plus the grace period, plus slack for a busy machine.
        bound = PRESENCE_TTL_SECONDS + GRACE_SECONDS + 6
        left = await observer.wait_for(
            lambda ev: ev["type"] == "USER_LEFT" and ev["userId"] == "holder", timeout=bound
        )
        assert left["resourceId"] == RESOURCE
        released = await observer.wait_for(
            lambda ev: (
                ev["type"] == "LOCK_STATUS_CHANGED" and ev.get("reason") == "holder_disconnected"
            ),
            timeout=bound,
        )
        released_in = time.monotonic() - killed_at
        assert (released["target"], released["holder"]) == ("plan", {"userId": "holder"})
        assert released_in >= GRACE_SECONDS

        # Everyone keeps editing through the survivors.
        await all_ack_more(editors, acked_at_kill)
        await stop_editors(editors)
        assert [e.refusals for e in editors] == [{}] * len(editors)

        users = await check_nothing_lost(balanced, editors)
        # The dead connections (the holder's, the moved editors' old ones) are gone from presence.
        assert users == sorted([*(e.name for e in editors), "observer", "reader"])
        # HAProxy hid the dead instance: no reconnect attempt failed, although leastconn first
        # picks the dead one (no connections) until the checks mark it down; see redispatches.
        assert [events[e.name]["CLIENT_RECONNECT_FAILED"] for e in editors] == [0] * len(editors)
        # Each resend after a reconnect may have stored an update a second time (one the victim
        # committed without its ACK getting out), and nothing else did.
        attempts = sum(events[e.name]["CLIENT_RECONNECTED"] for e in editors)
        acknowledged = sum(len(e.acknowledged) for e in editors)
        rows = await stored_rows(balanced.cluster.database_url)
        assert acknowledged <= rows <= acknowledged + attempts

        verify = await asyncio.to_thread(audit_verify, balanced.cluster.database_url)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        counters = await asyncio.to_thread(balanced.haproxy.backend)
        pause = max(
            (b - a for e in moved for a, b in zip(e.acks_at, e.acks_at[1:], strict=False)),
            default=0.0,
        )
        print(
            f"kill -9 of {victim.env['COLLABGATE_INSTANCE_ID']}: {len(moved)} clients reconnected"
            f" in {reconnected_in:.2f} s, HAProxy DOWN ({status}, {check}) after {down_in:.2f} s,"
            f" lock released after {released_in:.2f} s, longest pause between ACKs of a moved"
            f" editor {pause:.2f} s, {acknowledged} edits acknowledged, {rows} rows,"
            f" {attempts} reconnects; HAProxy retries {counters['wretr']},"
            f" redispatches {counters['wredis']}"
        )
    finally:
        await stop_editors(editors)
        for client in (*(e.client for e in editors), observer, holder):
            if client is not None:
                await client.close()


async def test_sigterm_drains_an_instance_behind_haproxy(balanced: Balanced) -> None:
    gateways = balanced.gateways
    editors = await connect_editors(balanced, 3)
    try:
        homes = {e.name: await home_of(gateways, e.client) for e in editors}
        assert sorted(await connections(gateways)) == [1, 1, 1]
        victim = homes["e0"]
        survivors = [g for g in gateways if g is not victim]
        moved = [e for e in editors if homes[e.name] is victim]
        stayed = [e for e in editors if homes[e.name] is not victim]

        for editor in editors:
            editor.start()
        await poll(lambda: _true(all(len(e.acknowledged) >= 5 for e in editors)), 20, "first ACKs")
        marks = {e.name: e.client.event_count for e in editors}
        acked_at_term = {e.name: len(e.acknowledged) for e in editors}
        started = time.monotonic()
        exited = asyncio.ensure_future(asyncio.to_thread(victim.terminate, 30))

        for editor in moved:
            shutdown = await editor.client.wait_for(
                lambda ev: ev["type"] == "SERVER_SHUTDOWN", timeout=10, after=marks[editor.name]
            )
            assert shutdown["reconnectAfterMs"] == RECONNECT_AFTER_MS
            await editor.client.wait_for(
                lambda ev: ev["type"] == "CLIENT_RECONNECTED", timeout=15, after=marks[editor.name]
            )
            assert await home_of(survivors, editor.client) in survivors
        moved_in = time.monotonic() - started
        # A draining instance stops listening first, so the check fails at layer 4; /ready would
        # say 503 "draining" to a connection that got in before.
        status, check = await server_down(balanced, victim)
        assert check.startswith(("L4", "L7STS")), check
        # uvicorn re-raises SIGTERM after a clean shutdown: -15 is a clean exit too.
        assert await asyncio.wait_for(exited, 30) in (0, -15)
        assert victim.logs_containing('"gateway_stopped"')
        assert [e.client.reconnects for e in stayed] == [0] * len(stayed)

        await all_ack_more(editors, acked_at_term)
        await stop_editors(editors)
        assert [e.refusals for e in editors] == [{}] * len(editors)
        users = await check_nothing_lost(balanced, editors)
        assert users == sorted([*(e.name for e in editors), "reader"])
        verify = await asyncio.to_thread(audit_verify, balanced.cluster.database_url)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        print(
            f"SIGTERM of {victim.env['COLLABGATE_INSTANCE_ID']}: {len(moved)} clients moved in"
            f" {moved_in:.2f} s; HAProxy: {status} ({check})"
        )
    finally:
        await stop_editors(editors)
        for editor in editors:
            await editor.client.close()
