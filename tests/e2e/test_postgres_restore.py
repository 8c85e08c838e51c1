"""The production store's restore drill on real PostgreSQL (docs/runbooks/disaster-recovery.md).

RDS restores (point in time, snapshots) cannot run here; a logical dump and restore exercises
what they must preserve as well: documents and the audit trail written through a gateway, the
schema revision, the monthly audit partitions, the append-only guards and the chain's head.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from collabgate.client import CollabClient
from tests.contract.test_postgres_specific import PostgresTestDatabase
from tests.e2e.test_backup import append
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e
RESOURCE = "patient:restored-1"


def run(*command: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if database_url is not None:
        env["COLLABGATE_DATABASE_URL"] = database_url
    return subprocess.run(
        list(command), env=env, capture_output=True, text=True, timeout=120, check=False
    )


def collabgate(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "collabgate", *args, database_url=database_url)


async def edit_and_read(gateway: GatewayProcess, *markers: str) -> str:
    async with CollabClient(gateway.ws_url, gateway.token("clinician"), reconnect=False) as client:
        await client.join(RESOURCE)
        for marker in markers:
            await client.edit(RESOURCE, append(marker))
        await client.acquire_lock(RESOURCE)  # audited too
        return str(client.text(RESOURCE))


async def audit_rows(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM audit_log"))
    finally:
        await connection.close()


async def test_a_dump_restores_into_a_database_that_verifies_and_serves(tmp_path: Path) -> None:
    source, target = PostgresTestDatabase(), PostgresTestDatabase()
    await source.create()
    await target.create(migrated=False)
    try:
        gateway = GatewayProcess(tmp_path / "a", env={"COLLABGATE_DATABASE_URL": source.url})
        gateway.start()
        try:
            written = await edit_and_read(gateway, "[BP 120/80]", "[pulse 72]")
        finally:
            gateway.terminate()
        dump = tmp_path / "collabgate.dump"
        dumped = run("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source.url)
        assert dumped.returncode == 0, dumped.stderr
        restored = run("pg_restore", "--no-owner", "--exit-on-error", "-d", target.url, str(dump))
        assert restored.returncode == 0, restored.stderr

        migrated = collabgate("migrate", database_url=target.url)
        assert migrated.stdout.strip() == "applied: nothing (already up to date)", migrated.stderr
        verified = collabgate("audit", "verify", database_url=target.url)
        assert verified.returncode == 0, verified.stderr
        assert await audit_rows(target.url) == await audit_rows(source.url)
        connection = await asyncpg.connect(target.url)
        try:
            with pytest.raises(asyncpg.PostgresError):  # the append-only guard came back too
                await connection.execute("UPDATE audit_log SET user_id = 'someone-else'")
        finally:
            await connection.close()

        gateway = GatewayProcess(tmp_path / "b", env={"COLLABGATE_DATABASE_URL": target.url})
        gateway.start()
        try:
            after = await edit_and_read(gateway, "[after restore]")
        finally:
            gateway.terminate()
        assert after == written + "[after restore]"
        again = collabgate("audit", "verify", database_url=target.url)
        assert again.returncode == 0, again.stderr  # the chain goes on from the restored head
    finally:
        await source.drop()
        await target.drop()
