"""Verification of a stored audit trail, for ``collabgate audit verify`` and for tests."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Protocol, runtime_checkable

from collabgate.audit.chain import GENESIS_HASH, ChainVerifier, VerifyReport
from collabgate.audit.port import AuditStore
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.settings import Settings
from collabgate.storage.sqlite import SqliteDatabase


@runtime_checkable
class RetainedAuditStore(Protocol):
    """A store whose oldest records may have been dropped by retention (PostgreSQL)."""

    async def retention_anchor(self) -> tuple[int, str] | None:
        """(seq, hash) of the last record dropped by retention, or None if none was."""
        ...


async def verify_store(store: AuditStore, batch: int = 10_000) -> VerifyReport:
    """Stream every record through the chain and compare the end with the stored head.

    The head is read before the records, so rows the store commits while we stream (a live
    gateway) are covered by re-reading it; rows beyond a head that does not move are reported.
    Memory stays constant whatever the length of the trail. When retention has dropped the
    oldest records, the chain is checked from the retention anchor the store recorded.
    """
    start_seq, start_hash = await _start(store)
    verifier = ChainVerifier(start_seq, start_hash)
    head = await store.head()
    after = start_seq
    while True:
        after = await _stream(store, verifier, after, batch)
        if verifier.last_seq <= head[0]:
            break
        newer = await store.head()
        if newer == head:
            break
        head = newer
    return verifier.finish(head)


async def _start(store: AuditStore) -> tuple[int, str]:
    """Where the retained chain begins: the retention anchor, else the genesis."""
    if isinstance(store, RetainedAuditStore):
        anchor = await store.retention_anchor()
        if anchor is not None:
            return anchor
    return 0, GENESIS_HASH


async def _stream(store: AuditStore, verifier: ChainVerifier, after: int, batch: int) -> int:
    """Feed every record after ``after``; return the last seq read."""
    while True:
        records = await store.records(after, batch)
        for record in records:
            verifier.feed(record)
        newest = max([after, *(record.seq for record in records)])
        if newest == after or len(records) < batch:
            return newest
        after = newest


async def verify_database(settings: Settings) -> VerifyReport:
    """Verify the embedded database named by ``settings`` without changing it.

    No schema is created (re-creating dropped triggers would hide that they were dropped);
    missing append-only triggers are reported as problems.
    """
    return await verify_sqlite_file(settings.database_file)


async def verify_sqlite_file(path: Path) -> VerifyReport:
    """:func:`verify_database` for the SQLite file at ``path`` (a live database or a backup)."""
    if not await asyncio.to_thread(path.exists):
        return VerifyReport(False, 0, [f"no database at {path}"])
    database = SqliteDatabase(path)
    store = SqliteAuditStore(database, create_schema=False)
    await database.open()
    try:
        report = await verify_store(store)
        missing = await store.missing_guards()
    except sqlite3.OperationalError as exc:
        return VerifyReport(False, 0, [f"cannot read the audit trail in {path}: {exc}"])
    finally:
        await database.close()
    problems = report.problems + [f"append-only guard missing: {name}" for name in missing]
    return VerifyReport(not problems, report.records_checked, problems)
