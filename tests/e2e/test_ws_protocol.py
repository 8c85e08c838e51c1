"""Every message and error code of docs/protocol.md against a real gateway process."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import orjson
import pytest
import websockets
from pycrdt import Doc, Text

from collabgate.client import CollabClient, LockDenial, LockGrant, ProtocolError
from tests.e2e.conftest import next_frame, poll_audit, raw_socket
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def expect_error(client: CollabClient, frame: dict[str, Any], code: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        await client.request(frame)
    assert caught.value.code == code, caught.value
    return caught.value


# --------------------------------------------------------------------------- handshake
async def test_connected_is_the_first_frame_with_header_or_query_token(
    gateway: GatewayProcess,
) -> None:
    token = gateway.token("hdr", "surgeon")
    async with await raw_socket(gateway.ws_url, token) as ws:
        frame = await next_frame(ws)
    assert frame["type"] == "CONNECTED"
    assert frame["user"] == {"userId": "hdr", "role": "surgeon", "name": "hdr"}
    async with websockets.connect(f"{gateway.ws_url}?token={gateway.token('qry')}") as ws:
        assert (await next_frame(ws))["type"] == "CONNECTED"


async def test_a_browser_can_send_its_token_as_a_subprotocol_instead_of_in_the_url(
    gateway: GatewayProcess,
) -> None:
    """`new WebSocket(url, ["collabgate", "bearer." + jwt])`: the token stays out of the URL
    (and so out of load-balancer access logs); the gateway selects "collabgate"."""
    offered = ["collabgate", f"bearer.{gateway.token('sub', 'surgeon')}"]
    async with websockets.connect(gateway.ws_url, subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "collabgate"
        frame = await next_frame(ws)
    assert frame["type"] == "CONNECTED"
    assert frame["user"]["userId"] == "sub"
    resource = f"ws://127.0.0.1:{gateway.port}/yjs/patient:subprotocol-1"
    async with websockets.connect(resource, subprotocols=offered) as yjs:  # type: ignore[arg-type]
        assert yjs.subprotocol == "collabgate"
        first = await yjs.recv()
        assert isinstance(first, bytes)
        assert first[:2] == b"\x00\x00"  # the server's SyncStep1, not a permission-denied
    forged = ["collabgate", "bearer.not-a-jwt"]
    async with websockets.connect(gateway.ws_url, subprotocols=forged) as ws:  # type: ignore[arg-type]
        assert (await next_frame(ws))["code"] == "WS_2002"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "WS_2001"),
        ("not-a-jwt", "WS_2002"),
        ("expired", "WS_2003"),
        ("forged", "WS_2002"),
    ],
)
async def test_rejected_tokens_get_an_error_and_close_4401(
    gateway: GatewayProcess, token: str | None, code: str
) -> None:
    if token == "expired":
        token = gateway.token("late", ttl=-10)
    elif token == "forged":
        genuine = gateway.token("mallory", "admin")
        header, payload, signature = genuine.split(".")
        token = f"{header}.{payload}.{signature[::-1]}"
    async with await raw_socket(gateway.ws_url, token) as ws:
        frame = await next_frame(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert (frame["type"], frame["code"]) == ("ERROR", code)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert any(
        code in row["details"] for row in await poll_audit(gateway, "CONNECTION_REJECTED", code)
    )


async def test_per_user_connection_cap(gateway: GatewayProcess) -> None:
    token = gateway.token("capped")
    sockets = [await raw_socket(gateway.ws_url, token) for _ in range(4)]
    try:
        for ws in sockets:
            assert (await next_frame(ws))["type"] == "CONNECTED"
        async with await raw_socket(gateway.ws_url, token) as extra:
            frame = await next_frame(extra)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await extra.recv()
        assert frame["code"] == "WS_1001"
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
    finally:
        for ws in sockets:
            await ws.close()


# --------------------------------------------------------------------------- documents
async def test_join_edit_relay_ack_and_sync(connect: Any) -> None:
    alice, bob = await connect("alice", "surgeon"), await connect("bob", "nurse")
    state = await alice.join("patient:e2e-1")
    assert (state.revision, [u["userId"] for u in state.users]) == (0, ["alice"])
    await bob.join("patient:e2e-1")
    joined = await alice.wait_for(lambda e: e["type"] == "USER_JOINED")
    assert joined["user"]["userId"] == "bob"

    revision = await alice.edit(
        "patient:e2e-1", lambda doc: doc.get("content", type=Text).insert(0, "BP 120/80")
    )
    assert revision == 1
    relayed = await bob.wait_for(lambda e: e["type"] == "Y_UPDATE")
    assert (relayed["userId"], relayed["revision"]) == ("alice", 1)
    assert str(bob.text("patient:e2e-1")) == "BP 120/80"

    stale = Doc()
    reply = await bob.request(
        {"type": "SYNC", "resourceId": "patient:e2e-1", "stateVector": b64(stale.get_state())}
    )
    stale.apply_update(base64.b64decode(reply["update"]))
    assert str(stale.get("content", type=Text)) == "BP 120/80"
    up_to_date = await bob.request(
        {
            "type": "SYNC",
            "resourceId": "patient:e2e-1",
            "stateVector": b64(bob.document("patient:e2e-1").get_state()),
        }
    )
    assert len(base64.b64decode(up_to_date["update"])) <= 2


async def test_leave_announces_departure(connect: Any) -> None:
    alice, bob = await connect("alice2"), await connect("bob2")
    await alice.join("patient:e2e-2")
    await bob.join("patient:e2e-2")
    await bob.leave("patient:e2e-2")
    left = await alice.wait_for(lambda e: e["type"] == "USER_LEFT")
    assert (left["userId"], left["reason"]) == ("bob2", "left")
    await bob.close()
    await expect_error(alice, {"type": "LEAVE_RESOURCE", "resourceId": "patient:e2e-3"}, "WS_4007")


async def test_disconnect_is_announced(connect: Any) -> None:
    alice, bob = await connect("alice3"), await connect("bob3")
    await alice.join("patient:e2e-4")
    await bob.join("patient:e2e-4")
    await bob.close()
    left = await alice.wait_for(lambda e: e["type"] == "USER_LEFT")
    assert left["reason"] == "disconnected"


async def test_awareness_reaches_others(connect: Any) -> None:
    alice, viewer = await connect("alice4"), await connect("vic4", "viewer")
    await alice.join("patient:e2e-5")
    await viewer.join("patient:e2e-5", mode="viewer")
    await viewer.awareness("patient:e2e-5", {"cursor": 7, "colour": "#0a0"})
    frame = await alice.wait_for(lambda e: e["type"] == "AWARENESS")
    assert frame["state"] == {"cursor": 7, "colour": "#0a0"}
    assert frame["userId"] == "vic4"


# --------------------------------------------------------------------------- locks
async def test_locks_grant_deny_extend_release_and_fencing(connect: Any) -> None:
    alice, bob = await connect("alice5", "surgeon"), await connect("bob5", "anesthesiologist")
    await alice.join("surgery:e2e-6/report:op")
    await bob.join("surgery:e2e-6/report:op")
    grant = await alice.acquire_lock("surgery:e2e-6/report:op", target="findings", ttl_ms=60_000)
    assert isinstance(grant, LockGrant)
    status = await bob.wait_for(lambda e: e["type"] == "LOCK_STATUS_CHANGED")
    assert (status["locked"], status["holder"]) == (True, {"userId": "alice5"})
    denial = await bob.acquire_lock("surgery:e2e-6/report:op", target="findings")
    assert isinstance(denial, LockDenial)
    assert denial.holder_user_id == "alice5"
    expires = await alice.extend_lock("surgery:e2e-6/report:op", target="findings", ttl_ms=120_000)
    assert expires > grant.expires_at
    await expect_error(
        bob,
        {"type": "LOCK_RELEASE", "resourceId": "surgery:e2e-6/report:op", "target": "findings"},
        "WS_4013",
    )
    await expect_error(
        bob,
        {"type": "LOCK_EXTEND", "resourceId": "surgery:e2e-6/report:op", "target": "findings"},
        "WS_4013",
    )
    await alice.release_lock("surgery:e2e-6/report:op", target="findings")
    released = await bob.wait_for(lambda e: e["type"] == "LOCK_STATUS_CHANGED" and not e["locked"])
    assert released["reason"] == "released"
    regrant = await bob.acquire_lock("surgery:e2e-6/report:op", target="findings")
    assert isinstance(regrant, LockGrant)
    assert regrant.fencing_token > grant.fencing_token


async def test_lock_expiry_is_broadcast(connect: Any) -> None:
    alice, bob = await connect("alice6"), await connect("bob6")
    await alice.join("patient:e2e-7")
    await bob.join("patient:e2e-7")
    await alice.acquire_lock("patient:e2e-7", target="vitals", ttl_ms=1)
    expired = await bob.wait_for(
        lambda e: e["type"] == "LOCK_STATUS_CHANGED" and e.get("reason") == "expired", timeout=10
    )
    assert expired["target"] == "vitals"


async def test_holder_disconnect_releases_locks_after_grace(connect: Any) -> None:
    alice, bob = await connect("alice7"), await connect("bob7")
    await alice.join("patient:e2e-8")
    await bob.join("patient:e2e-8")
    await alice.acquire_lock("patient:e2e-8")
    await alice.close()
    released = await bob.wait_for(
        lambda e: e["type"] == "LOCK_STATUS_CHANGED" and e.get("reason") == "holder_disconnected",
        timeout=10,
    )
    assert released["target"] == "*"


async def test_whole_resource_lock_refuses_other_editors(connect: Any) -> None:
    alice, bob = await connect("alice8"), await connect("bob8")
    await alice.join("patient:e2e-9")
    await bob.join("patient:e2e-9")
    await alice.acquire_lock("patient:e2e-9")
    with pytest.raises(ProtocolError) as caught:
        await bob.edit("patient:e2e-9", lambda doc: doc.get("content", type=Text).insert(0, "x"))
    assert caught.value.code == "WS_4003"


# --------------------------------------------------------------------------- rules and errors
async def test_viewer_and_guest_restrictions(connect: Any) -> None:
    viewer, guest = await connect("vic9", "viewer"), await connect("gus9", "guest")
    await expect_error(
        viewer,
        {"type": "JOIN_RESOURCE", "resourceId": "patient:e2e-10", "mode": "editor"},
        "WS_2004",
    )
    await expect_error(guest, {"type": "JOIN_RESOURCE", "resourceId": "patient:e2e-10"}, "WS_2004")
    await guest.join("patient:e2e-10", mode="viewer")
    update = b64(Doc().get_update())
    await expect_error(
        guest, {"type": "Y_UPDATE", "resourceId": "patient:e2e-10", "update": update}, "WS_2004"
    )
    await expect_error(guest, {"type": "LOCK_ACQUIRE", "resourceId": "patient:e2e-10"}, "WS_2004")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "JOIN_RESOURCE", "resourceId": "patient 1"}, "WS_3001"),
        ({"type": "JOIN_RESOURCE"}, "WS_3002"),
        ({"type": "TELEPORT"}, "WS_3003"),
        ({"type": "JOIN_RESOURCE", "resourceId": "patient:x", "mode": "owner"}, "WS_4008"),
        ({"type": "JOIN_RESOURCE", "resourceId": "invoice:1"}, "WS_4005"),
        ({"type": "SYNC", "resourceId": "patient:x", "stateVector": "AA=="}, "WS_4007"),
        ({"type": "Y_UPDATE", "resourceId": "patient:x", "update": "AA=="}, "WS_4007"),
    ],
)
async def test_bad_requests_get_the_error_that_names_them(
    connect: Any, frame: dict[str, Any], code: str
) -> None:
    client = await connect("errs")
    error = await expect_error(client, frame, code)
    assert error.message


async def test_malformed_json_and_oversized_frames(gateway: GatewayProcess) -> None:
    async with await raw_socket(gateway.ws_url, gateway.token("raw")) as ws:
        await next_frame(ws)
        await ws.send("{broken")
        assert (await next_frame(ws))["code"] == "WS_3001"
        await ws.send(orjson.dumps({"type": "HEARTBEAT", "pad": "x" * 70_000}).decode())
        too_large = await next_frame(ws)
        assert too_large["code"] == "WS_3004"
        assert "65536" in too_large["message"]
        await ws.send(orjson.dumps({"type": "HEARTBEAT", "ref": "still-alive"}).decode())
        assert (await next_frame(ws))["type"] == "HEARTBEAT_ACK"


async def test_join_twice_room_full_and_invalid_update(connect: Any) -> None:
    first = await connect("r1")
    await first.join("chart:full")
    await expect_error(first, {"type": "JOIN_RESOURCE", "resourceId": "chart:full"}, "WS_4006")
    for user in ("r2", "r3"):
        await (await connect(user)).join("chart:full")
    await expect_error(
        await connect("r4"), {"type": "JOIN_RESOURCE", "resourceId": "chart:full"}, "WS_4001"
    )
    await expect_error(
        first,
        {"type": "Y_UPDATE", "resourceId": "chart:full", "update": b64(b"\x09\xff")},
        "WS_3001",
    )


async def test_heartbeat(connect: Any) -> None:
    client = await connect("hb")
    server_time = await client.heartbeat()
    assert abs(server_time - time.time() * 1000) < 60_000


# --------------------------------------------------------------------------- http
async def test_health_ready_and_metrics(gateway: GatewayProcess, connect: Any) -> None:
    client = await connect("metrics-user")
    await client.join("patient:metrics")
    await client.edit("patient:metrics", lambda doc: doc.get("content", type=Text).insert(0, "m"))
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        ready = await http.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["dependencies"]["documents"]["up"] is True
        metrics = (await http.get("/metrics")).text
    for name in (
        "websocket_connections_total",
        "websocket_messages_sent_total",
        "websocket_messages_received_total",
        "lock_acquisitions_total",
        "lock_acquisition_duration_seconds",
        "redis_operation_duration_seconds",
        "rabbitmq_publish_total",
        "audit_logs_written_total",
        "collabgate_message_handling_seconds_bucket",
        'collabgate_errors_total{code="WS_3001"}',
    ):
        assert name in metrics, name
    assert 'websocket_messages_received_total{type="Y_UPDATE"}' in metrics
    assert "patient:metrics" not in metrics  # no resource ids as labels
    # The edit above was acknowledged, so it is committed: the storage counters have moved.
    assert sample(metrics, "collabgate_storage_commits_total") >= 1
    assert sample(metrics, "collabgate_storage_writes_total") >= 1
    assert sample(metrics, "collabgate_storage_commit_seconds_count") >= 1
    assert sample(metrics, "collabgate_storage_commit_seconds_sum") > 0


def sample(exposition: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus text exposition."""
    for line in exposition.splitlines():
        metric, _, value = line.partition(" ")
        if metric == name:
            return float(value)
    raise AssertionError(f"{name} is not in the exposition")


async def test_logs_are_ndjson_without_tokens_or_content(
    gateway: GatewayProcess, connect: Any
) -> None:
    token = gateway.token("logger")
    client = CollabClient(gateway.ws_url, token, reconnect=False)
    await client.connect()
    await client.join("patient:logs")
    await client.edit(
        "patient:logs", lambda doc: doc.get("content", type=Text).insert(0, "SECRET-DIAGNOSIS")
    )
    await client.close()
    await asyncio.to_thread(gateway.wait_for_log, '"user_id":"logger"', 10)
    await asyncio.to_thread(gateway.wait_for_log, '"event":"connection_closed"', 10)
    json_lines = [orjson.loads(line) for line in gateway.lines if line.startswith("{")]
    assert any(
        entry.get("event") == "connection_opened" and entry.get("connection_id")
        for entry in json_lines
    )
    query_token = gateway.token("querylogger")
    async with websockets.connect(f"{gateway.ws_url}?token={query_token}") as ws:
        assert (await next_frame(ws))["type"] == "CONNECTED"
    await asyncio.to_thread(gateway.wait_for_log, '"user_id":"querylogger"', 10)
    everything = "\n".join(gateway.lines)
    assert token not in everything
    assert query_token not in everything
    assert "token=[redacted]" in everything
    assert "SECRET-DIAGNOSIS" not in everything
    assert all(line.startswith("{") for line in gateway.lines if line.strip())
