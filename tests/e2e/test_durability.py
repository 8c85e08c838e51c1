"""Acknowledged edits survive kill -9; SIGTERM drains clients and flushes; the audit chain holds."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection

from collabgate.client import CollabClient
from tests.e2e.conftest import next_frame, raw_socket
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e
RESOURCE = "patient:durable-1"


def audit_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collabgate", "audit", "verify"],
        env={"COLLABGATE_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


async def test_acknowledged_edits_survive_kill_9(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()
    writers = [
        CollabClient(gateway.ws_url, gateway.token(f"w{i}"), reconnect=False) for i in range(3)
    ]
    acknowledged: list[str] = []
    enough = asyncio.Event()
    try:
        for writer in writers:
            await writer.connect()
            await writer.join(RESOURCE)

        async def edit_forever(writer: CollabClient, name: str) -> None:
            n = 0
            while True:
                marker = f"[{name}-{n}]"
                await writer.edit(
                    RESOURCE, lambda doc, m=marker: doc.get("content", type=Text).insert(0, m)
                )
                acknowledged.append(marker)
                if len(acknowledged) >= 150:
                    enough.set()
                n += 1

        tasks = [asyncio.create_task(edit_forever(w, f"w{i}")) for i, w in enumerate(writers)]
        await asyncio.wait_for(enough.wait(), 60)
        gateway.kill()  # SIGKILL while edits are in flight: nothing gets flushed
        snapshot = list(acknowledged)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results)
    finally:
        for writer in writers:
            await writer.close()

    restarted = GatewayProcess(tmp_path).start()
    try:
        async with CollabClient(
            restarted.ws_url, restarted.token("reader"), reconnect=False
        ) as reader:
            state = await reader.join(RESOURCE)
            text = str(reader.text(RESOURCE))
        missing = [marker for marker in snapshot if marker not in text]
        assert missing == []
        assert state.revision >= len(snapshot)
    finally:
        restarted.terminate()
    assert audit_verify(tmp_path).returncode == 0
    # Every stored update has its DOCUMENT_UPDATED record, the last ones before the kill too.
    assert audited_revisions(tmp_path, RESOURCE) == list(range(1, state.revision + 1))


def audited_revisions(data_dir: Path, resource_id: str) -> list[int]:
    with sqlite3.connect(data_dir / "collabgate.sqlite3") as database:
        rows = database.execute(
            "SELECT details FROM audit_log WHERE event_type = 'DOCUMENT_UPDATED'"
            " AND resource_id = ? ORDER BY seq",
            (resource_id,),
        ).fetchall()
    return sorted(orjson.loads(details)["revision"] for (details,) in rows)


async def frames_until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Every frame up to and including the first of type ``kind``."""
    frames = [await next_frame(ws)]
    while frames[-1]["type"] != kind:
        frames.append(await next_frame(ws))
    return frames


def typed(doc: Doc, text: str) -> str:
    """A Y.js update inserting ``text`` into the doc's content, base64 as Y_UPDATE carries it."""
    before = doc.get_state()
    doc.get("content", type=Text).insert(0, text)
    return base64.b64encode(doc.get_update(before)).decode()


async def send_while_the_disk_is_held(
    tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[list[str], list[tuple[str, int]], list[int]]:
    """Two updates then a heartbeat, sent while another process holds SQLite's write lock (a
    commit that stalls, as on a busy disk); the lock goes once the heartbeat is answered.

    Returns the sender's frame types up to that answer, its ACKs (ref, revision) afterwards, and
    the revisions the peer was relayed.
    """
    gateway = GatewayProcess(tmp_path, env=env or {}).start()
    blocker = sqlite3.connect(tmp_path / "collabgate.sqlite3", isolation_level=None)
    try:
        async with (
            await raw_socket(gateway.ws_url, gateway.token("typist")) as ws,
            await raw_socket(gateway.ws_url, gateway.token("reader")) as peer,
        ):
            for socket in (ws, peer):
                await socket.send(orjson.dumps({"type": "JOIN_RESOURCE", "resourceId": RESOURCE}))
                await frames_until(socket, "RESOURCE_STATE")
            blocker.execute("BEGIN IMMEDIATE")  # the gateway's writer now waits for the lock
            doc = Doc()
            for ref, text in (("u1", "first "), ("u2", "second ")):
                frame = {"type": "Y_UPDATE", "resourceId": RESOURCE, "update": typed(doc, text)}
                await ws.send(orjson.dumps({**frame, "ref": ref}))
            await ws.send(orjson.dumps({"type": "HEARTBEAT", "ref": "h"}))
            if env is None:  # the heartbeat is answered while the lock is held
                answered = await asyncio.wait_for(frames_until(ws, "HEARTBEAT_ACK"), 4)
                blocker.execute("ROLLBACK")
            else:
                blocker.execute("ROLLBACK")
                answered = await asyncio.wait_for(frames_until(ws, "HEARTBEAT_ACK"), 10)
            acks = [a for a in answered if a["type"] == "Y_UPDATE_ACK"]
            while len(acks) < 2:
                acks.append((await asyncio.wait_for(frames_until(ws, "Y_UPDATE_ACK"), 10))[-1])
            relayed = [
                (await asyncio.wait_for(frames_until(peer, "Y_UPDATE"), 4))[-1] for _ in "12"
            ]
    finally:
        blocker.close()
        gateway.terminate()
    return (
        [f["type"] for f in answered],
        [(a["ref"], a["revision"]) for a in acks],
        [r["revision"] for r in relayed],
    )


async def test_the_socket_is_read_on_while_an_update_waits_for_the_disk(tmp_path: Path) -> None:
    """A stalled commit holds back the ACKs, not the sender's other requests; the ACKs then come
    in the order of the updates, and peers had both updates at once."""
    answered, acks, relayed = await send_while_the_disk_is_held(tmp_path)
    assert "Y_UPDATE_ACK" not in answered
    assert acks == [("u1", 1), ("u2", 2)]
    assert relayed == [1, 2]


async def test_at_max_updates_in_flight_the_socket_waits_for_the_store(tmp_path: Path) -> None:
    """With one update allowed in flight, the second is not read until the first is stored:
    the heartbeat behind it is answered after the first ACK."""
    env = {"COLLABGATE_MAX_UPDATES_IN_FLIGHT": "1"}
    answered, acks, relayed = await send_while_the_disk_is_held(tmp_path, env)
    assert answered.index("Y_UPDATE_ACK") < answered.index("HEARTBEAT_ACK")
    assert acks == [("u1", 1), ("u2", 2)]
    assert relayed == [1, 2]


async def test_sigterm_drains_clients_and_flushes(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start()
    client = CollabClient(gateway.ws_url, gateway.token("drainee"), reconnect=False)
    await client.connect()
    await client.join(RESOURCE)
    await client.edit(
        RESOURCE, lambda doc: doc.get("content", type=Text).insert(0, "before shutdown")
    )
    exit_code = await asyncio.to_thread(gateway.terminate)
    shutdown = await client.wait_for(lambda e: e["type"] == "SERVER_SHUTDOWN")
    assert shutdown["reconnectAfterMs"] == 1000
    await client.closed.wait()
    assert client.close_code == 1012
    assert exit_code in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert gateway.logs_containing('"gateway_stopped"')
    connection = sqlite3.connect(tmp_path / "collabgate.sqlite3")
    events = [row[0] for row in connection.execute("SELECT event_type FROM audit_log ORDER BY seq")]
    connection.close()
    assert events[-1] == "USER_DISCONNECTED"
    assert "DOCUMENT_UPDATED" in events
    report = audit_verify(tmp_path)
    assert report.returncode == 0, report.stderr
    assert "intact" in report.stdout


def test_audit_verify_detects_tampering(tmp_path: Path) -> None:
    async def produce() -> None:
        gateway = GatewayProcess(tmp_path).start()
        try:
            async with CollabClient(
                gateway.ws_url, gateway.token("auditee"), reconnect=False
            ) as client:
                await client.join(RESOURCE)
                await client.acquire_lock(RESOURCE)
        finally:
            gateway.terminate()

    asyncio.run(produce())
    assert audit_verify(tmp_path).returncode == 0
    connection = sqlite3.connect(tmp_path / "collabgate.sqlite3")
    with pytest.raises(sqlite3.DatabaseError):
        connection.execute("UPDATE audit_log SET user_id = 'someone-else' WHERE seq = 2")
    connection.execute("DROP TRIGGER audit_log_no_update")
    connection.execute("UPDATE audit_log SET user_id = 'someone-else' WHERE seq = 2")
    connection.commit()
    connection.close()
    report = audit_verify(tmp_path)
    assert report.returncode == 1
    assert "BROKEN" in report.stdout
    assert "2" in report.stderr
