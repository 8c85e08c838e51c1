"""The AuditStore contract, tamper detection, and the AuditTrail buffering in front of a store.

Tests see the port plus a small backend harness that can reach the data behind the adapter's back
(as an operator with file or superuser access could) and make the store unavailable. To run the
suite against another adapter, add a backend class and its name to ``BACKENDS``. The "postgres"
backend needs a server on COLLABGATE_TEST_DATABASE_URL (see test_postgres_specific.py): without
one it skips, or fails under CI=true.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson
import pytest

from collabgate.audit.chain import GENESIS_HASH, event_fields, link
from collabgate.audit.port import AuditEvent, AuditEventType, AuditRecord, AuditStore
from collabgate.audit.postgres import PostgresAuditStore
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.audit.trail import AuditTrail
from collabgate.audit.verify import verify_database, verify_store
from collabgate.settings import load_settings
from collabgate.storage.postgres import PostgresDatabase
from collabgate.storage.sqlite import SqliteDatabase
from tests.contract.test_postgres_specific import PostgresTestDatabase, dollar_placeholders

TYPES = list(AuditEventType)


class AuditBackend(Protocol):
    #: What a refused UPDATE or DELETE raises.
    refused: type[BaseException]

    async def open(self) -> AuditStore:
        """A new store instance on this backend's data."""
        ...

    async def close(self) -> None: ...

    async def destroy(self) -> None:
        """Remove the backend's data for good (after :meth:`close`)."""
        ...

    def raw(self, sql: str, *params: Any) -> None:
        """Run SQL directly, bypassing the adapter (``?`` placeholders)."""
        ...

    def drop_guards(self) -> None:
        """Remove the database's append-only protection, as a privileged attacker could."""
        ...

    async def go_down(self) -> None:
        """Make writes fail as if the database were unreachable."""
        ...

    async def come_back(self) -> None: ...


class SqliteAuditBackend:
    refused: type[BaseException] = sqlite3.DatabaseError

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "collabgate.sqlite3"
        self.database = SqliteDatabase(self.path, busy_timeout_ms=100)
        self._locker: sqlite3.Connection | None = None

    async def open(self) -> AuditStore:
        store = SqliteAuditStore(self.database)
        await self.database.open()
        return store

    async def close(self) -> None:
        await self.come_back()
        await self.database.close()

    async def destroy(self) -> None:
        """The file lives in tmp_path, which pytest removes."""

    def raw(self, sql: str, *params: Any) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute(sql, params)
        finally:
            connection.close()

    def drop_guards(self) -> None:
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_head_forward_only"):
            self.raw(f"DROP TRIGGER {name}")

    async def go_down(self) -> None:
        """Another process holds the write lock: every commit fails with 'database is locked'."""
        self._locker = sqlite3.connect(self.path, isolation_level=None)
        self._locker.execute("BEGIN EXCLUSIVE")

    async def come_back(self) -> None:
        if self._locker is not None:
            self._locker.execute("ROLLBACK")
            self._locker.close()
            self._locker = None


class PostgresAuditBackend:
    """A database of the test's own (cgtest_<uuid>), migrated on first open, dropped at the end.

    An outage is the real thing as the gateway sees it: the database's backends are terminated and
    new connections refused (the shared server keeps running).
    """

    refused: type[BaseException] = asyncpg.InsufficientPrivilegeError

    def __init__(self, tmp_path: Path) -> None:
        self.pg = PostgresTestDatabase()
        self.database: PostgresDatabase | None = None

    async def open(self) -> AuditStore:
        if not self.pg.created:
            await self.pg.create()
        if self.database is None:
            self.database = PostgresDatabase(
                self.pg.url, connect_timeout=2, health_check_interval=None
            )
            await self.database.open()
        return PostgresAuditStore(self.database)

    async def close(self) -> None:
        await self.come_back()
        if self.database is not None:
            await self.database.close()
            self.database = None

    async def destroy(self) -> None:
        await self.pg.drop()

    def raw(self, sql: str, *params: Any) -> None:
        self.pg.execute_sync(dollar_placeholders(sql), *params)

    def drop_guards(self) -> None:
        for name, table in (
            ("audit_log_no_update", "audit_log"),
            ("audit_log_no_delete", "audit_log"),
            ("audit_head_forward_only", "audit_head"),
        ):
            self.raw(f"DROP TRIGGER {name} ON {table}")

    async def go_down(self) -> None:
        await self.pg.block_connections()

    async def come_back(self) -> None:
        await self.pg.allow_connections()


BACKENDS: dict[str, Callable[[Path], AuditBackend]] = {
    "sqlite": SqliteAuditBackend,
    "postgres": PostgresAuditBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
async def audit_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AuditBackend]:
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    try:
        await backend.close()
    finally:
        await backend.destroy()


@pytest.fixture
async def audit_store(audit_backend: AuditBackend) -> AuditStore:
    return await audit_backend.open()


def event(n: int) -> AuditEvent:
    return AuditEvent(
        event_type=TYPES[n % len(TYPES)],
        occurred_at=1_700_000_000_000 + n,
        instance_id="gw-1",
        user_id=f"user-{n % 3}",
        resource_id=f"patient:{n % 4}" if n % 5 else None,
        connection_id=f"conn-{n}",
        details={"n": n, "reason": "test"},
    )


def numbers(records: list[AuditRecord]) -> list[int]:
    return [record.event.details["n"] for record in records]


async def all_records(store: AuditStore) -> list[AuditRecord]:
    return await store.records(0, 1_000_000)


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait for a condition the code under test exposes (bounded, polled on the event loop)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the condition is a counter, not an event
            await asyncio.sleep(0.005)


# --- the store ------------------------------------------------------------------------------------


async def test_an_empty_store_has_the_genesis_head(audit_store: AuditStore) -> None:
    assert await audit_store.head() == (0, GENESIS_HASH)
    assert await audit_store.records() == []
    await audit_store.append([])
    assert await audit_store.head() == (0, GENESIS_HASH)
    assert (await verify_store(audit_store)).ok


async def test_events_read_back_in_order_with_a_correct_chain(audit_store: AuditStore) -> None:
    events = [event(n) for n in range(25)]
    for start in range(0, 25, 10):
        await audit_store.append(events[start : start + 10])

    records = await all_records(audit_store)
    assert [record.seq for record in records] == list(range(1, 26))
    assert [record.event for record in records] == events
    prev = GENESIS_HASH
    for record in records:
        assert record.prev_hash == prev
        assert record.hash == link(prev, record.seq, record.event)
        prev = record.hash
    assert await audit_store.head() == (25, prev)
    assert [r.seq for r in await audit_store.records(after_seq=20, limit=3)] == [21, 22, 23]
    report = await verify_store(audit_store, batch=7)
    assert (report.ok, report.records_checked) == (True, 25)


async def test_concurrent_appends_form_one_chain(audit_store: AuditStore) -> None:
    await asyncio.gather(*(audit_store.append([event(2 * n), event(2 * n + 1)]) for n in range(50)))
    records = await all_records(audit_store)
    assert len(records) == 100
    assert sorted(numbers(records)) == list(range(100))
    assert (await verify_store(audit_store)).ok


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET user_id = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ],
)
async def test_update_and_delete_are_refused_by_the_database(
    audit_backend: AuditBackend, audit_store: AuditStore, sql: str
) -> None:
    await audit_store.append([event(n) for n in range(3)])
    with pytest.raises(audit_backend.refused, match="append-only"):
        audit_backend.raw(sql)
    assert numbers(await all_records(audit_store)) == [0, 1, 2]
    assert (await verify_store(audit_store)).ok


TAMPERING = {
    "altered user": (["UPDATE audit_log SET user_id = 'mallory' WHERE seq = 4"], "seq 4"),
    "altered details": (
        ["""UPDATE audit_log SET details = '{"n":3,"reason":"none"}' WHERE seq = 4"""],
        "seq 4",
    ),
    "altered type": (["UPDATE audit_log SET event_type = 'NO_SUCH' WHERE seq = 4"], "seq 4"),
    "altered time": (["UPDATE audit_log SET occurred_at = occurred_at + 1 WHERE seq = 4"], "seq 4"),
    "deleted row": (["DELETE FROM audit_log WHERE seq = 6"], "seq 6"),
    "truncated tail": (["DELETE FROM audit_log WHERE seq > 8"], "truncated"),
    "swapped rows": (
        [
            "UPDATE audit_log SET seq = -1 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 5",
            "UPDATE audit_log SET seq = 5 WHERE seq = -1",
        ],
        "seq 3",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
async def test_tampering_after_dropping_the_guards_is_reported(
    audit_backend: AuditBackend, audit_store: AuditStore, case: str
) -> None:
    await audit_store.append([event(n) for n in range(10)])
    statements, named = TAMPERING[case]
    audit_backend.drop_guards()
    for sql in statements:
        audit_backend.raw(sql)
    report = await verify_store(audit_store)
    assert not report.ok
    assert any(named in problem for problem in report.problems), report.problems


async def test_verify_database_reports_missing_guards_and_changes_nothing(tmp_path: Path) -> None:
    backend = SqliteAuditBackend(tmp_path)
    store = await backend.open()
    await store.append([event(n) for n in range(3)])
    await backend.close()
    settings = load_settings(sqlite_path=backend.path)
    assert (await verify_database(settings)).ok

    backend.raw("DROP TRIGGER audit_log_no_update")
    report = await verify_database(settings)
    assert report.problems == ["append-only guard missing: audit_log_no_update"]
    report = await verify_database(settings)  # verification did not re-create the trigger
    assert report.problems == ["append-only guard missing: audit_log_no_update"]
    missing = await verify_database(load_settings(sqlite_path=tmp_path / "absent.sqlite3"))
    assert not missing.ok


# --- the trail in front of the store --------------------------------------------------------------


def spool_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def test_the_trail_stores_every_event_in_order(
    audit_store: AuditStore, tmp_path: Path
) -> None:
    written: list[int] = []
    trail = AuditTrail(
        audit_store, max_queue=1000, spool_path=tmp_path / "spool.ndjson", on_written=written.append
    )
    await trail.start()
    for n in range(300):
        trail.record(event(n))
    await asyncio.wait_for(trail.flush(), 10)
    assert numbers(await all_records(audit_store)) == list(range(300))
    assert (trail.pending, trail.written_total, sum(written)) == (0, 300, 300)
    assert (await verify_store(audit_store)).ok
    await trail.close()


async def test_recording_never_raises_into_the_caller(
    audit_store: AuditStore, tmp_path: Path
) -> None:
    trail = AuditTrail(audit_store, max_queue=10, spool_path=tmp_path / "spool.ndjson")
    await trail.start()
    trail.record(AuditEvent(AuditEventType.LOCK_DENIED, "not a time", "gw-1"))  # type: ignore[arg-type]
    trail.record(AuditEvent(AuditEventType.LOCK_DENIED, 1, "gw-1", details={"big": 2**80}))
    trail.record(AuditEvent(AuditEventType.LOCK_DENIED, 2, "gw-1", details={"t": (1, 2)}))
    await asyncio.wait_for(trail.flush(), 10)
    records = await all_records(audit_store)
    assert [record.event.details for record in records] == [
        {"error": "details could not be encoded as JSON"},
        {"t": [1, 2]},
    ]
    await trail.close()


async def test_an_outage_keeps_spills_and_then_stores_every_event_once_in_order(
    audit_backend: AuditBackend, audit_store: AuditStore, tmp_path: Path
) -> None:
    spool = tmp_path / "spool" / "audit.ndjson"
    written: list[int] = []
    trail = AuditTrail(
        audit_store, max_queue=10, spool_path=spool, on_written=written.append, batch_size=8
    )
    await trail.start()
    for n in range(5):
        trail.record(event(n))
    await asyncio.wait_for(trail.flush(), 10)

    await audit_backend.go_down()
    for n in range(5, 8):
        trail.record(event(n))
    await until(lambda: trail.store_failures >= 1)  # events 5..7 are the failed batch
    for n in range(8, 58):
        trail.record(event(n))
    assert trail.pending == 53
    assert trail.spooled > 0
    assert spool_lines(spool) == trail.spooled
    assert trail.pending - trail.spooled <= 10 + 8  # memory bounded: max_queue + in-flight batch
    await until(lambda: trail.store_failures >= 3)

    await audit_backend.come_back()
    await asyncio.wait_for(trail.flush(), 30)
    assert numbers(await all_records(audit_store)) == list(range(58))
    assert (trail.pending, trail.spooled, spool.stat().st_size) == (0, 0, 0)
    assert (trail.written_total, sum(written)) == (58, 58)
    assert (await verify_store(audit_store)).ok
    await trail.close()


async def test_closing_during_an_outage_spools_everything_for_the_next_run(
    audit_backend: AuditBackend, audit_store: AuditStore, tmp_path: Path
) -> None:
    spool = tmp_path / "audit-spool.ndjson"
    trail = AuditTrail(audit_store, max_queue=10, spool_path=spool, batch_size=8)
    await trail.start()
    await audit_backend.go_down()
    for n in range(3):
        trail.record(event(n))
    await until(lambda: trail.store_failures >= 1)  # 0..2 in flight, taken from memory
    for n in range(3, 43):
        trail.record(event(n))  # spilled behind the in-flight batch
    await trail.close(drain_seconds=10)
    assert spool_lines(spool) == 43
    trail.record(event(43))  # after close: straight to the spool, not lost
    assert spool_lines(spool) == 44

    await audit_backend.come_back()
    store = await audit_backend.open()  # the first trail closed the store it owned
    next_run = AuditTrail(store, max_queue=10, spool_path=spool, batch_size=8)
    await next_run.start()
    assert next_run.pending == 44
    next_run.record(event(44))
    await asyncio.wait_for(next_run.flush(), 30)
    assert numbers(await all_records(store)) == list(range(45))
    assert (await verify_store(store)).ok
    await next_run.close()


async def test_a_spool_left_by_a_crash_resumes_at_its_saved_offset(
    audit_store: AuditStore, tmp_path: Path
) -> None:
    spool = tmp_path / "audit-spool.ndjson"
    lines = [orjson.dumps(event_fields(event(n))) + b"\n" for n in range(6)]
    spool.write_bytes(b"".join(lines) + b'{"event_type": "USER_CON')  # torn by the crash
    (tmp_path / "audit-spool.ndjson.offset").write_text(str(len(lines[0]) + len(lines[1])))

    trail = AuditTrail(audit_store, max_queue=10, spool_path=spool, batch_size=3)
    await trail.start()
    assert trail.pending == 4
    await asyncio.wait_for(trail.flush(), 10)
    assert numbers(await all_records(audit_store)) == [2, 3, 4, 5]
    assert not (tmp_path / "audit-spool.ndjson.offset").exists()
    await trail.close()
