"""The operator's commands against a real PostgreSQL: ``collabgate migrate`` and
``collabgate audit retention``, run as an operator runs them (a process, settings from the
environment)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from collabgate.storage.migrate import current_revision, head_revision
from tests.contract.test_postgres_specific import PostgresTestDatabase

pytestmark = pytest.mark.e2e


def collabgate(*args: str, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if database_url is not None:
        env["COLLABGATE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "collabgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def fresh() -> AsyncIterator[PostgresTestDatabase]:
    """An empty database: created, never migrated."""
    database = PostgresTestDatabase()
    await database.create(migrated=False)
    try:
        yield database
    finally:
        await database.drop()


async def test_migrate_brings_a_fresh_database_to_the_head_once(
    fresh: PostgresTestDatabase,
) -> None:
    first = collabgate("migrate", database_url=fresh.url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("applied: ")
    assert head_revision() in first.stdout
    assert await current_revision(fresh.url) == head_revision()
    again = collabgate("migrate", database_url=fresh.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "applied: nothing (already up to date)"


async def test_migrate_names_what_is_missing_or_unreachable() -> None:
    unset = collabgate("migrate", database_url=None)
    assert unset.returncode == 2
    assert "COLLABGATE_DATABASE_URL is not set" in unset.stderr
    away = collabgate("migrate", database_url="postgresql://u:secret@127.0.0.1:1/none")
    assert away.returncode == 2
    assert "COLLABGATE_DATABASE_URL" in away.stderr
    assert "secret" not in away.stderr + away.stdout  # the password is never printed


async def test_audit_retention_dry_run_reports_and_drops_nothing(
    fresh: PostgresTestDatabase,
) -> None:
    assert collabgate("migrate", database_url=fresh.url).returncode == 0
    preview = collabgate("audit", "retention", "--dry-run", database_url=fresh.url)
    assert preview.returncode == 0, preview.stderr
    assert ": would drop nothing" in preview.stdout
    run = collabgate("audit", "retention", database_url=fresh.url)
    assert run.returncode == 0, run.stderr
    assert ": dropped nothing" in run.stdout
