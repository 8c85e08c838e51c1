"""Backups of the embedded database, as an operator takes and restores them: `collabgate backup`
against a real gateway process, its SQLite file and its audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from collabgate.client import CollabClient
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e
RESOURCE = "patient:backup-1"


def collabgate(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collabgate", *args],
        env={"COLLABGATE_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def append(marker: str) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        doc.get("content", type=Text).insert(len(doc.get("content", type=Text)), marker)

    return edit


async def write(gateway: GatewayProcess, *markers: str) -> None:
    async with CollabClient(gateway.ws_url, gateway.token("writer"), reconnect=False) as writer:
        await writer.join(RESOURCE)
        for marker in markers:
            await writer.edit(RESOURCE, append(marker))


async def text_of(gateway: GatewayProcess) -> str:
    async with CollabClient(gateway.ws_url, gateway.token("reader"), reconnect=False) as reader:
        await reader.join(RESOURCE)
        return str(reader.text(RESOURCE))


async def test_a_backup_taken_while_editing_restores_every_edit_acknowledged_before_it(
    tmp_path: Path,
) -> None:
    data, backup = tmp_path / "data", tmp_path / "backups" / "collabgate.sqlite3"
    gateway = GatewayProcess(data).start()
    acknowledged: list[str] = []
    try:
        await write(gateway, "[before]")
        async with CollabClient(gateway.ws_url, gateway.token("typist"), reconnect=False) as typist:
            await typist.join(RESOURCE)
            typing = asyncio.Event()

            async def type_on() -> None:
                for n in range(10_000):
                    marker = f"[t{n}]"
                    await typist.edit(RESOURCE, append(marker))
                    acknowledged.append(marker)
                    typing.set()

            typist_task = asyncio.create_task(type_on())
            await typing.wait()
            before_backup = list(acknowledged)
            made = await asyncio.to_thread(collabgate, data, "backup", "create", str(backup))
            typist_task.cancel()
            await asyncio.gather(typist_task, return_exceptions=True)
        assert made.returncode == 0, made.stderr
        assert "audit trail verified up to record" in made.stdout
        await write(gateway, "[after]")  # not in the backup: lost by the restore (RPO)
    finally:
        gateway.terminate()

    verified = collabgate(data, "backup", "verify", str(backup))
    assert verified.returncode == 0, verified.stderr
    assert "backup intact" in verified.stdout
    restored = collabgate(data, "backup", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    kept = [p for p in data.iterdir() if p.name.startswith("collabgate.sqlite3.replaced-")]
    assert kept, "the replaced database is kept"
    assert collabgate(data, "audit", "verify").returncode == 0

    gateway = GatewayProcess(data).start()
    try:
        text = await text_of(gateway)
    finally:
        gateway.terminate()
    assert "[before]" in text
    assert [m for m in before_backup if m not in text] == []
    assert "[after]" not in text


async def test_restore_refuses_while_a_gateway_serves_the_database(tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup.sqlite3"
    gateway = GatewayProcess(data).start()
    try:
        await write(gateway, "[kept]")
        assert collabgate(data, "backup", "create", str(backup)).returncode == 0
        refused = collabgate(data, "backup", "restore", str(backup))
        assert refused.returncode == 1
        assert f"in use by another process (pid {gateway.process.pid})" in refused.stderr  # type: ignore[union-attr]
        assert "stop the gateway first" in refused.stderr
        await write(gateway, "[still served]")
        assert "[still served]" in await text_of(gateway)
    finally:
        gateway.terminate()


async def test_a_second_gateway_on_the_same_data_directory_stops_at_start_up(
    tmp_path: Path,
) -> None:
    first = GatewayProcess(tmp_path).start()
    try:
        second = GatewayProcess(tmp_path)
        with pytest.raises(RuntimeError, match="gateway did not start") as caught:
            second.start()
        assert "in use by another process" in str(caught.value)
        await write(first, "[first serves on]")
    finally:
        first.terminate()


async def test_a_damaged_backup_is_refused_and_the_database_is_left_alone(tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup.sqlite3"
    gateway = GatewayProcess(data).start()
    try:
        await write(gateway, "[one]", "[two]")
    finally:
        gateway.terminate()
    assert collabgate(data, "backup", "create", str(backup)).returncode == 0
    again = collabgate(data, "backup", "create", str(backup))
    assert again.returncode == 1
    assert "already exists" in again.stderr

    damaged = bytearray(backup.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    backup.write_bytes(bytes(damaged))
    database = data / "collabgate.sqlite3"
    before = digest(database)
    verified = collabgate(data, "backup", "verify", str(backup))
    assert verified.returncode == 1
    assert "damaged or replaced" in verified.stderr
    restored = collabgate(data, "backup", "restore", str(backup))
    assert restored.returncode == 1
    assert "nothing changed" in restored.stderr
    assert digest(database) == before
    assert sorted(p.name for p in data.iterdir() if p.name.startswith("collabgate.sqlite3.")) == [
        "collabgate.sqlite3.gateway-lock"
    ]


async def test_a_database_whose_audit_trail_was_altered_is_not_backed_up(tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup.sqlite3"
    gateway = GatewayProcess(data).start()
    try:
        await write(gateway, "[audited]")
    finally:
        gateway.terminate()
    connection = sqlite3.connect(data / "collabgate.sqlite3")
    connection.execute("DROP TRIGGER audit_log_no_update")
    connection.execute("UPDATE audit_log SET user_id = 'someone-else' WHERE seq = 2")
    connection.commit()
    connection.close()
    made = collabgate(data, "backup", "create", str(backup))
    assert made.returncode == 1
    assert "does not verify" in made.stderr
    assert not backup.exists()
    assert list(backup.parent.glob("backup.sqlite3*")) == []
