"""The DocumentStore contract: every adapter passes this same suite.

The tests see only the port plus a small backend harness (open, close, commit count). To run the
suite against another adapter, add a backend class and its name to ``BACKENDS``. The "postgres"
backend needs a server on COLLABGATE_TEST_DATABASE_URL (see test_postgres_specific.py): without
one it skips, or fails under CI=true.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest
from pycrdt import Doc, Text

from collabgate.audit.chain import verify
from collabgate.audit.port import AuditEvent, AuditEventType, AuditRecord
from collabgate.audit.postgres import PostgresAuditStore
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.documents.port import DocumentStore, StoredDocument, UpdateRecord
from collabgate.documents.postgres import PostgresDocumentStore
from collabgate.documents.sqlite import SqliteDocumentStore
from collabgate.storage.postgres import PostgresDatabase
from collabgate.storage.sqlite import SqliteDatabase
from tests.contract.test_postgres_specific import PostgresTestDatabase

RESOURCE = "patient:42"


class DocumentBackend(Protocol):
    async def open(self) -> DocumentStore:
        """A store on this backend's data (again after :meth:`close`: same data). Opened twice,
        two independent stores on the same data, as two gateway instances have."""
        ...

    async def close(self) -> None: ...

    async def destroy(self) -> None:
        """Remove the backend's data for good (after :meth:`close`)."""
        ...

    def commits(self) -> int:
        """Durable commits made so far (one per fsync'd transaction)."""
        ...

    def writes(self) -> int:
        """Writes those commits held (a write refused on its own is not one)."""
        ...

    async def audit_records(self) -> list[AuditRecord]:
        """The audit trail of the store last opened (its stores share the database)."""
        ...

    async def refuse_audit_records_of(self, resource_id: str) -> None:
        """From now on the database refuses to store an audit record of ``resource_id``."""
        ...


class SqliteBackend:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "collabgate.sqlite3"
        self.database: SqliteDatabase | None = None
        self.opened: list[tuple[SqliteDatabase, SqliteDocumentStore]] = []

    async def open(self) -> DocumentStore:
        self.database = SqliteDatabase(self.path, max_batch=2048)
        self.audit = SqliteAuditStore(self.database)
        store = SqliteDocumentStore(self.database, audit=self.audit)
        await self.database.open()
        self.opened.append((self.database, store))
        return store

    async def close(self) -> None:
        opened, self.opened = self.opened, []
        for database, store in opened:
            await store.close()
            await database.close()

    async def destroy(self) -> None:
        """The file lives in tmp_path, which pytest removes."""

    def commits(self) -> int:
        assert self.database is not None
        return self.database.commits

    def writes(self) -> int:
        assert self.database is not None
        return self.database.writes

    async def audit_records(self) -> list[AuditRecord]:
        return await self.audit.records()

    async def refuse_audit_records_of(self, resource_id: str) -> None:
        assert self.database is not None
        trigger = (
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log"
            f" WHEN NEW.resource_id = '{resource_id}'"
            " BEGIN SELECT RAISE(ABORT, 'audit record refused'); END"
        )
        await self.database.write(lambda connection: connection.execute(trigger))


class PostgresBackend:
    """A database of the test's own (cgtest_<uuid>), migrated on first open, dropped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.pg = PostgresTestDatabase()
        self.database: PostgresDatabase | None = None
        self.opened: list[tuple[PostgresDatabase, PostgresDocumentStore]] = []

    async def open(self) -> DocumentStore:
        if not self.pg.created:
            await self.pg.create()
        self.database = PostgresDatabase(self.pg.url, max_batch=2048, health_check_interval=None)
        await self.database.open()
        self.audit = PostgresAuditStore(self.database)
        store = PostgresDocumentStore(self.database, audit=self.audit)
        self.opened.append((self.database, store))
        return store

    async def close(self) -> None:
        opened, self.opened = self.opened, []
        for database, store in opened:
            await store.close()
            await database.close()

    async def destroy(self) -> None:
        await self.pg.drop()

    def commits(self) -> int:
        assert self.database is not None
        return self.database.commits

    def writes(self) -> int:
        assert self.database is not None
        return self.database.writes

    async def audit_records(self) -> list[AuditRecord]:
        return await self.audit.records()

    async def refuse_audit_records_of(self, resource_id: str) -> None:
        assert self.database is not None
        statements = (
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN IF NEW.resource_id = '{resource_id}' THEN"
            " RAISE EXCEPTION 'audit record refused'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        )

        async def install(connection: Any) -> None:
            for statement in statements:
                await connection.execute(statement)

        await self.database.write(install, lane="documents")


BACKENDS: dict[str, Callable[[Path], DocumentBackend]] = {
    "sqlite": SqliteBackend,
    "postgres": PostgresBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
async def document_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DocumentBackend]:
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    try:
        await backend.close()
    finally:
        await backend.destroy()


@pytest.fixture
async def document_store(document_backend: DocumentBackend) -> DocumentStore:
    return await document_backend.open()


def edits(count: int) -> tuple[list[bytes], str]:
    """``count`` Y.js updates typing into one text, and the final text."""
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    updates = []
    for n in range(count):
        state = doc.get_state()
        text.insert(len(text) // 2, f"<{n}>")
        updates.append(doc.get_update(state))
    return updates, str(text)


def snapshot_of(updates: list[bytes]) -> bytes:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc.get_update()


def text_of(stored: StoredDocument) -> str:
    doc: Doc[Any] = Doc()
    if stored.snapshot is not None:
        doc.apply_update(stored.snapshot)
    for update in stored.updates:
        doc.apply_update(update)
    return str(doc.get("body", type=Text))


async def append_all(store: DocumentStore, updates: list[bytes], first: int = 1) -> None:
    for revision, update in enumerate(updates, start=first):
        await store.append(RESOURCE, revision, update)


async def test_a_resource_never_written_loads_empty(document_store: DocumentStore) -> None:
    stored = await document_store.load("patient:never")
    assert stored.snapshot is None
    assert stored.updates == []
    assert stored.revision == 0


async def test_updates_load_in_revision_order(document_store: DocumentStore) -> None:
    updates = [f"update-{n}".encode() for n in range(1, 6)]
    await append_all(document_store, updates)
    await document_store.append("patient:other", 1, b"elsewhere")
    stored = await document_store.load(RESOURCE)
    assert stored.snapshot is None
    assert stored.updates == updates
    assert stored.revision == 5
    assert (await document_store.load("patient:other")).updates == [b"elsewhere"]


async def test_a_gap_in_revisions_does_not_make_the_next_one_collide(
    document_store: DocumentStore,
) -> None:
    # Revision 3's append failed (say the disk was full) and is not retried under that number.
    await document_store.append(RESOURCE, 1, b"one")
    await document_store.append(RESOURCE, 2, b"two")
    await document_store.append(RESOURCE, 4, b"four")
    stored = await document_store.load(RESOURCE)
    assert stored.revision == 4
    await document_store.append(RESOURCE, stored.revision + 1, b"five")
    assert (await document_store.load(RESOURCE)).updates == [b"one", b"two", b"four", b"five"]


async def test_compaction_keeps_later_updates_and_the_same_document(
    document_store: DocumentStore,
) -> None:
    updates, final_text = edits(30)
    await append_all(document_store, updates)
    await document_store.compact(RESOURCE, 20, snapshot_of(updates[:20]))

    stored = await document_store.load(RESOURCE)
    assert stored.snapshot_revision == 20
    assert stored.updates == updates[20:]
    assert stored.revision == 30
    assert text_of(stored) == final_text


async def test_updates_after_a_compaction_and_a_second_compaction(
    document_store: DocumentStore,
) -> None:
    updates, final_text = edits(12)
    await append_all(document_store, updates[:6])
    await document_store.compact(RESOURCE, 6, snapshot_of(updates[:6]))
    await append_all(document_store, updates[6:], first=7)
    await document_store.compact(RESOURCE, 10, snapshot_of(updates[:10]))
    stored = await document_store.load(RESOURCE)
    assert (stored.snapshot_revision, stored.updates) == (10, updates[10:])
    assert text_of(stored) == final_text


async def test_a_compaction_keeps_what_another_store_appended_after_it_loaded(
    document_backend: DocumentBackend,
) -> None:
    """Two instances: one loads to compact, the other appends, then the compaction lands."""
    compacting, appending = await document_backend.open(), await document_backend.open()
    updates, final_text = edits(8)
    await append_all(compacting, updates[:6])
    loaded = await compacting.load(RESOURCE)  # the compaction's read
    await append_all(appending, updates[6:], first=7)  # the other instance, meanwhile
    await compacting.compact(RESOURCE, loaded.revision, snapshot_of(loaded.updates))

    for store in (appending, compacting):
        stored = await store.load(RESOURCE)
        assert (stored.snapshot_revision, stored.updates, stored.revision) == (6, updates[6:], 8)
        assert text_of(stored) == final_text


async def test_an_append_below_another_stores_compaction_is_stored_above_it(
    document_backend: DocumentBackend,
) -> None:
    """An instance that took a revision number before the other compacted past it has its update
    stored above the snapshot, not under it, where no load would ever read it."""
    compacting, late = await document_backend.open(), await document_backend.open()
    updates, final_text = edits(6)
    await append_all(compacting, updates[:4])
    await compacting.compact(RESOURCE, 4, snapshot_of(updates[:4]))
    assert await late.append(RESOURCE, 3, updates[4]) == 5
    assert await late.append(RESOURCE, 6, updates[5]) == 6
    stored = await compacting.load(RESOURCE)
    assert (stored.snapshot_revision, stored.updates, stored.revision) == (4, updates[4:], 6)
    assert text_of(stored) == final_text


async def test_an_older_snapshot_never_replaces_a_newer_one(document_store: DocumentStore) -> None:
    updates, final_text = edits(10)
    await append_all(document_store, updates)
    await document_store.compact(RESOURCE, 8, snapshot_of(updates[:8]))
    await document_store.compact(RESOURCE, 5, snapshot_of(updates[:5]))  # finished late
    stored = await document_store.load(RESOURCE)
    assert stored.snapshot_revision == 8
    assert text_of(stored) == final_text


async def test_a_taken_revision_is_stored_as_the_next_and_nothing_is_overwritten(
    document_store: DocumentStore,
) -> None:
    assert await document_store.append(RESOURCE, 1, b"first") == 1
    assert await document_store.append(RESOURCE, 1, b"second") == 2
    assert await document_store.append(RESOURCE, 7, b"after a gap") == 7
    assert await document_store.append(RESOURCE, 5, b"late") == 8
    stored = await document_store.load(RESOURCE)
    assert (stored.updates, stored.revision) == ([b"first", b"second", b"after a gap", b"late"], 8)


async def test_a_revision_covered_by_the_snapshot_is_stored_above_it(
    document_store: DocumentStore,
) -> None:
    updates, final_text = edits(4)
    await append_all(document_store, updates[:3])
    await document_store.compact(RESOURCE, 3, snapshot_of(updates[:3]))
    assert await document_store.append(RESOURCE, 2, updates[3]) == 4
    stored = await document_store.load(RESOURCE)
    assert (stored.snapshot_revision, stored.updates) == (3, [updates[3]])
    assert text_of(stored) == final_text


async def test_appends_of_one_batch_that_take_the_same_revision_are_stored_in_order(
    document_store: DocumentStore,
) -> None:
    await document_store.append(RESOURCE, 1, b"one")
    results = await asyncio.gather(
        *(document_store.append(RESOURCE, 2, b"u%d" % n) for n in range(40)),
    )
    assert results == list(range(2, 42))
    stored = await document_store.load(RESOURCE)
    assert stored.updates == [b"one", *(b"u%d" % n for n in range(40))]


async def test_appends_to_several_resources_at_once_are_numbered_per_resource(
    document_store: DocumentStore,
) -> None:
    await document_store.append("patient:a", 1, b"a1")
    await document_store.append("patient:b", 5, b"b5")
    results = await asyncio.gather(
        document_store.append("patient:a", 2, b"a2"),
        document_store.append("patient:b", 5, b"b taken"),
        document_store.append("patient:b", 6, b"b6"),
        document_store.append("patient:c", 1, b"c1"),
        document_store.append("patient:c", 1, b"c1 again"),
    )
    assert results == [2, 6, 7, 1, 2]
    assert (await document_store.load("patient:a")).updates == [b"a1", b"a2"]
    assert (await document_store.load("patient:b")).updates == [b"b5", b"b taken", b"b6"]
    assert (await document_store.load("patient:c")).updates == [b"c1", b"c1 again"]


async def test_a_revision_below_one_is_refused(document_store: DocumentStore) -> None:
    with pytest.raises(ValueError, match="revision must be at least 1"):
        await document_store.append(RESOURCE, 0, b"zero")
    assert (await document_store.load(RESOURCE)).updates == []


async def test_data_survives_close_and_reopen(document_backend: DocumentBackend) -> None:
    store = await document_backend.open()
    updates, final_text = edits(10)
    await append_all(store, updates)
    await store.compact(RESOURCE, 4, snapshot_of(updates[:4]))
    await document_backend.close()

    reopened = await document_backend.open()
    stored = await reopened.load(RESOURCE)
    assert (stored.snapshot_revision, stored.updates) == (4, updates[4:])
    assert text_of(stored) == final_text


async def test_200_concurrent_appends_are_all_stored(document_store: DocumentStore) -> None:
    updates = [b"update-%d" % revision for revision in range(1, 201)]
    await asyncio.gather(
        *(
            document_store.append(RESOURCE, revision, update)
            for revision, update in enumerate(updates, start=1)
        )
    )
    stored = await document_store.load(RESOURCE)
    assert stored.updates == updates


async def test_concurrent_appends_share_commits(document_backend: DocumentBackend) -> None:
    store = await document_backend.open()
    before, writes_before = document_backend.commits(), document_backend.writes()
    await asyncio.gather(
        *(store.append(f"patient:{revision % 7}", revision, b"u") for revision in range(1, 201))
    )
    used = document_backend.commits() - before
    assert 1 <= used <= 10, f"200 concurrent appends took {used} commits"
    assert document_backend.writes() - writes_before == 200


async def test_a_lone_append_is_committed_on_its_own(document_backend: DocumentBackend) -> None:
    store = await document_backend.open()
    before = document_backend.commits()
    await asyncio.wait_for(store.append(RESOURCE, 1, b"alone"), timeout=5)
    assert document_backend.commits() - before == 1


# --- an update and its audit record: one transaction ---------------------------------------------


def updated(resource_id: str) -> UpdateRecord:
    """The update's record, as the gateway gives it: built from the revision it is stored as."""
    return partial(_updated, resource_id)


def _updated(resource_id: str, revision: int) -> AuditEvent:
    return AuditEvent(
        AuditEventType.DOCUMENT_UPDATED,
        occurred_at=1_700_000_000_000 + revision,
        instance_id="contract",
        user_id="dr-who",
        resource_id=resource_id,
        connection_id="c1",
        details={"revision": revision, "bytes": 3},
    )


def recorded(records: list[AuditRecord]) -> list[tuple[str | None, int]]:
    return [(r.event.resource_id, r.event.details["revision"]) for r in records]


async def test_an_update_is_stored_with_its_audit_record(
    document_backend: DocumentBackend,
) -> None:
    store = await document_backend.open()
    await asyncio.gather(
        *(store.append(RESOURCE, n, b"u%d" % n, updated(RESOURCE)) for n in range(1, 6))
    )
    # Durable together: nothing was flushed, the database is closed and opened again.
    await document_backend.close()
    store = await document_backend.open()
    records = await document_backend.audit_records()
    assert recorded(records) == [(RESOURCE, n) for n in range(1, 6)]
    assert verify(records).ok
    assert (await store.load(RESOURCE)).updates == [b"u%d" % n for n in range(1, 6)]


async def test_a_renumbered_update_is_recorded_under_the_revision_it_is_stored_as(
    document_backend: DocumentBackend,
) -> None:
    store = await document_backend.open()
    assert await store.append(RESOURCE, 1, b"first", updated(RESOURCE)) == 1
    assert await store.append(RESOURCE, 1, b"second", updated(RESOURCE)) == 2
    records = await document_backend.audit_records()
    assert recorded(records) == [(RESOURCE, 1), (RESOURCE, 2)]
    assert verify(records).ok


async def test_an_update_whose_record_cannot_be_stored_is_not_stored(
    document_backend: DocumentBackend,
) -> None:
    store = await document_backend.open()
    await document_backend.refuse_audit_records_of("patient:unaudited")
    results = await asyncio.gather(
        store.append(RESOURCE, 1, b"audited", updated(RESOURCE)),
        store.append("patient:unaudited", 1, b"lost", updated("patient:unaudited")),
        store.append(RESOURCE, 2, b"audited too", updated(RESOURCE)),
        return_exceptions=True,
    )
    assert results[0] == 1
    assert results[2] == 2
    assert "audit record refused" in str(results[1])
    assert (await store.load("patient:unaudited")).updates == []
    assert (await store.load(RESOURCE)).updates == [b"audited", b"audited too"]
    assert recorded(await document_backend.audit_records()) == [(RESOURCE, 1), (RESOURCE, 2)]


async def test_a_store_without_an_audit_store_refuses_a_record(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "collabgate.sqlite3")
    store = SqliteDocumentStore(database)
    await database.open()
    try:
        with pytest.raises(ValueError, match="no audit store"):
            await store.append(RESOURCE, 1, b"one", updated(RESOURCE))
        assert (await store.load(RESOURCE)).updates == []
    finally:
        await database.close()
