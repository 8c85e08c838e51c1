"""Acknowledged edits survive kill -9; SIGTERM drains clients and flushes; the audit chain holds."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pycrdt import Text

from collabgate.client import CollabClient
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
