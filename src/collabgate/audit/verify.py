"""Verification of a stored audit trail, for ``collabgate audit verify`` and for tests."""

from __future__ import annotations

import sqlite3

from collabgate.audit.chain import ChainVerifier, VerifyReport
from collabgate.audit.port import AuditStore
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.settings import Settings
from collabgate.storage.sqlite import SqliteDatabase


async def verify_store(store: AuditStore, batch: int = 10_000) -> VerifyReport:
    """Stream every record through the chain and compare the end with the stored head.

    The head is read before the records, so rows the store commits while we stream (a live
    gateway) are covered by re-reading it; rows beyond a head that does not move are reported.
    Memory stays constant whatever the length of the trail.
    """
    verifier = ChainVerifier()
    head = await store.head()
    after = 0
    while True:
        after = await _stream(store, verifier, after, batch)
        if verifier.last_seq <= head[0]:
            break
        newer = await store.head()
        if newer == head:
            break
        head = newer
    return verifier.finish(head)


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
    path = settings.database_file
    if not path.exists():
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
