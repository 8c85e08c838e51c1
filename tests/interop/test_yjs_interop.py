"""Stock Yjs clients (yjs 13 + y-websocket's WebsocketProvider, pinned in package.json) and a
collabgate.client /ws client on one resource: convergence, awareness, viewers, offline edits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from pycrdt import Text

from collabgate.client import CollabClient
from tests.interop.node_peers import NodePeers, node_binary
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    node_binary()  # fail (CI) or skip before starting anything
    process = GatewayProcess(tmp_path_factory.mktemp("interop")).start()
    yield process
    process.terminate()


@pytest.fixture
async def peers(gateway: GatewayProcess) -> AsyncIterator[NodePeers]:
    driver = await NodePeers.start()
    yield driver
    await driver.close()


@pytest.fixture
async def ws_client(gateway: GatewayProcess) -> AsyncIterator[Callable[..., Any]]:
    clients: list[CollabClient] = []

    async def _connect(sub: str, role: str = "nurse") -> CollabClient:
        client = CollabClient(gateway.ws_url, gateway.token(sub, role), reconnect=False)
        await client.connect()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.close()


def yjs_url(gateway: GatewayProcess) -> str:
    return f"ws://127.0.0.1:{gateway.port}/yjs"


def resource() -> str:
    return f"chart:interop-{uuid.uuid4().hex[:8]}"


async def open_peer(
    peers: NodePeers,
    gateway: GatewayProcess,
    name: str,
    rid: str,
    role: str = "nurse",
    token_in: str = "query",
) -> None:
    token = gateway.token(name, role)
    await peers.call(
        "open", peer=name, url=yjs_url(gateway), room=rid, token=token, tokenIn=token_in
    )


async def text_with(client: CollabClient, rid: str, tokens: list[str]) -> str:
    """Wait until the /ws client's document holds every token; return its text."""

    def complete(_: object = None) -> bool:
        return all(token in str(client.text(rid)) for token in tokens)

    if not complete():
        await client.wait_for(complete, timeout=15)
    return str(client.text(rid))


def insert_at_start(text: str) -> Callable[[Any], None]:
    return lambda doc: doc.get("content", type=Text).insert(0, text)


async def test_driver_runs_the_stable_yjs_13_line(peers: NodePeers) -> None:
    assert peers.versions["yjs"].startswith("13."), peers.versions
    assert peers.versions["y-websocket"].split(".")[0] in {"1", "2"}, peers.versions


async def test_concurrent_edits_from_three_clients_converge(
    peers: NodePeers, gateway: GatewayProcess, ws_client: Callable[..., Any]
) -> None:
    rid = resource()
    await open_peer(peers, gateway, "alice", rid)
    await open_peer(peers, gateway, "bob", rid)
    carol: CollabClient = await ws_client("carol")
    await carol.join(rid)
    tokens = [f"{who}{i};" for who in ("a", "b", "c") for i in range(8)]
    await asyncio.gather(
        *(peers.call("insert", peer="alice", index=0, text=f"a{i};") for i in range(8)),
        *(peers.call("insert", peer="bob", index=10**6, text=f"b{i};") for i in range(8)),
        *(carol.edit(rid, insert_at_start(f"c{i};")) for i in range(8)),
    )
    final = await text_with(carol, rid, tokens)
    await peers.call("waitText", peer="alice", text=final)
    await peers.call("waitText", peer="bob", text=final)
    assert sorted(final.split(";")[:-1]) == sorted(t[:-1] for t in tokens)


async def test_a_stock_provider_can_carry_its_token_as_a_subprotocol(
    peers: NodePeers, gateway: GatewayProcess, ws_client: Callable[..., Any]
) -> None:
    """WebsocketProvider's own `protocols` option: the token stays out of the URL."""
    rid = resource()
    await open_peer(peers, gateway, "alice", rid, token_in="protocol")
    carol: CollabClient = await ws_client("carol")
    await carol.join(rid)
    await peers.call("insert", peer="alice", index=0, text="from alice;")
    await carol.edit(rid, insert_at_start("from carol;"))
    final = await text_with(carol, rid, ["from alice;", "from carol;"])
    await peers.call("waitText", peer="alice", text=final)


async def test_awareness_reaches_every_client(
    peers: NodePeers, gateway: GatewayProcess, ws_client: Callable[..., Any]
) -> None:
    rid = resource()
    carol: CollabClient = await ws_client("carol")
    await carol.join(rid)
    await open_peer(peers, gateway, "alice", rid)
    await open_peer(peers, gateway, "bob", rid)
    await peers.call("setAwareness", peer="alice", field="user", value={"name": "Alice"})
    await peers.call("waitAwareness", peer="bob", field="user", value={"name": "Alice"})
    seen = await carol.wait_for(
        lambda e: e["type"] == "AWARENESS" and (e.get("state") or {}).get("user") is not None
    )
    assert (seen["userId"], seen["state"]["user"]) == ("alice", {"name": "Alice"})
    await carol.awareness(rid, {"cursor": {"anchor": 4, "head": 4}})
    for name in ("alice", "bob"):
        await peers.call("waitAwareness", peer=name, field="cursor", value={"anchor": 4, "head": 4})


async def test_a_viewer_cannot_change_the_document(
    peers: NodePeers, gateway: GatewayProcess, ws_client: Callable[..., Any]
) -> None:
    rid = resource()
    await open_peer(peers, gateway, "alice", rid)
    await open_peer(peers, gateway, "vic", rid, role="viewer")
    carol: CollabClient = await ws_client("carol")
    await carol.join(rid)
    await peers.call("insert", peer="vic", index=0, text="VIEWER WAS HERE")
    denied = await peers.call("denied", peer="vic")
    assert any("WS_2004 PERMISSION_DENIED" in reason for reason in denied["reasons"]), denied
    await peers.call("insert", peer="alice", index=0, text="after")
    await text_with(carol, rid, ["after"])
    await peers.call("waitText", peer="alice", text="after")
    assert str(carol.text(rid)) == "after"
    # A fresh client gets the server's state: the viewer's edit is nowhere.
    await open_peer(peers, gateway, "dora", rid)
    await peers.call("waitText", peer="dora", text="after")


async def test_offline_edits_merge_on_reconnect(
    peers: NodePeers, gateway: GatewayProcess, ws_client: Callable[..., Any]
) -> None:
    rid = resource()
    await open_peer(peers, gateway, "alice", rid)
    await open_peer(peers, gateway, "bob", rid)
    carol: CollabClient = await ws_client("carol")
    await carol.join(rid)
    await peers.call("insert", peer="alice", index=0, text="base;")
    await text_with(carol, rid, ["base;"])
    await peers.call("waitText", peer="bob", text="base;")
    await peers.call("disconnect", peer="bob")
    await peers.call("insert", peer="bob", index=5, text="offline-bob;")
    await peers.call("insert", peer="alice", index=0, text="online-alice;")
    await carol.edit(rid, insert_at_start("online-carol;"))
    await peers.call("connect", peer="bob")
    final = await text_with(carol, rid, ["base;", "offline-bob;", "online-alice;", "online-carol;"])
    await peers.call("waitText", peer="alice", text=final)
    await peers.call("waitText", peer="bob", text=final)


async def test_quiet_clients_are_not_timed_out(tmp_path: Path) -> None:
    """y-websocket sends no heartbeat: with a 4 s heartbeat timeout, a provider whose awareness
    is empty (it sends nothing at all) and one that only renews its awareness every 15 s both
    stay connected for three timeouts: the gateway's query-awareness probe keeps them alive."""
    gateway = GatewayProcess(tmp_path, env={"COLLABGATE_HEARTBEAT_TIMEOUT_SECONDS": "4"}).start()
    try:  # the gateway stops even when the Node driver cannot start
        driver = await NodePeers.start()
        try:
            rid = resource()
            await open_peer(driver, gateway, "quiet", rid)
            await driver.call("clearAwareness", peer="quiet")
            await open_peer(driver, gateway, "renewing", rid)
            await asyncio.sleep(12)  # not a synchronisation: the property is "nothing happens"
            for name in ("quiet", "renewing"):
                assert await driver.call("closes", peer=name) == {
                    "id": ANY,
                    "ok": True,
                    "closes": 0,
                    "connected": True,
                }
            assert not gateway.logs_containing("heartbeat timeout")
        finally:
            await driver.close()
    finally:
        gateway.terminate()
