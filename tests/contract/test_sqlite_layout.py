"""The embedded SQLite file's write-once layout: staged document updates and folded audit indexes.

Documents: appends land in ``document_updates_staged`` and move to ``document_updates`` once
``fold_rows`` are staged. Audit: records enter ``audit_user_index`` / ``audit_resource_index``
once ``index_rows`` have accumulated, and the views ``audit_log_by_user`` /
``audit_log_by_resource`` show every record either way. The thresholds are tiny here so that
folds happen within a few writes; every check compares against what the file holds, read with
plain SQL on the store's own database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from collabgate.audit.port import AuditEvent, AuditEventType
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.documents.sqlite import SqliteDocumentStore
from collabgate.storage.sqlite import SqliteDatabase

RESOURCE = "patient:1"
OTHER = "patient:2"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "layout.sqlite3")
    yield database
    await database.close()


async def count(database: SqliteDatabase, sql: str, *params: Any) -> int:
    def query(connection: sqlite3.Connection) -> int:
        return int(connection.execute(sql, params).fetchone()[0])

    return await database.read(query)


def update(revision: int) -> bytes:
    return b"update-%d" % revision


async def refuse_inserts_into(database: SqliteDatabase, table: str) -> None:
    """Make every insert into ``table`` fail, as a damaged file or a stray trigger could."""

    def create_trigger(connection: sqlite3.Connection) -> None:
        connection.execute(
            f"CREATE TRIGGER refuse_inserts BEFORE INSERT ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{table} refuses rows'); END"
        )

    await database.write(create_trigger)


async def accept_inserts_again(database: SqliteDatabase) -> None:
    await database.write(lambda connection: connection.execute("DROP TRIGGER refuse_inserts"))


# --- documents --------------------------------------------------------------------------------


async def test_updates_load_the_same_before_and_after_a_fold(database: SqliteDatabase) -> None:
    store = SqliteDocumentStore(database, fold_rows=5)
    await database.open()
    for revision in range(1, 13):
        await store.append(RESOURCE, revision, update(revision))
        await store.append(OTHER, revision, update(100 + revision))
        loaded = await store.load(RESOURCE)
        assert loaded.updates == [update(r) for r in range(1, revision + 1)]
        assert loaded.last_revision == revision
        assert (await store.load(OTHER)).updates == [
            update(100 + r) for r in range(1, revision + 1)
        ]

    staged = await count(database, "SELECT count(*) FROM document_updates_staged")
    folded = await count(database, "SELECT count(*) FROM document_updates")
    assert staged < 5  # the staging table was emptied by folds ...
    assert staged + folded == 24  # ... and every update is in exactly one of the two tables


async def test_a_revision_is_not_taken_again_wherever_it_is_stored(
    database: SqliteDatabase,
) -> None:
    store = SqliteDocumentStore(database, fold_rows=5)
    await database.open()
    for revision in range(1, 7):  # 1-5 fold into document_updates; 6 stays staged
        await store.append(RESOURCE, revision, update(revision))
    assert await count(database, "SELECT count(*) FROM document_updates_staged") == 1

    assert await store.append(RESOURCE, 3, update(7)) == 7  # 3 is folded, 6 staged
    assert await store.append(RESOURCE, 6, update(8)) == 8
    assert (await store.load(RESOURCE)).updates == [update(r) for r in range(1, 9)]


async def test_compaction_drops_covered_updates_from_both_tables(database: SqliteDatabase) -> None:
    store = SqliteDocumentStore(database, fold_rows=4)
    await database.open()
    for revision in range(1, 7):  # 1-4 folded, 5-6 staged
        await store.append(RESOURCE, revision, update(revision))

    await store.compact(RESOURCE, 5, b"snapshot-5")

    loaded = await store.load(RESOURCE)
    assert (loaded.snapshot, loaded.snapshot_revision, loaded.updates) == (
        b"snapshot-5",
        5,
        [update(6)],
    )
    for table in ("document_updates", "document_updates_staged"):
        assert await count(database, f"SELECT count(*) FROM {table} WHERE revision <= 5") == 0


async def test_a_restart_folds_what_was_staged(database: SqliteDatabase) -> None:
    store = SqliteDocumentStore(database, fold_rows=100)
    await database.open()
    for revision in range(1, 4):
        await store.append(RESOURCE, revision, update(revision))
    await database.close()

    store = SqliteDocumentStore(database, fold_rows=100)
    await database.open()
    assert await count(database, "SELECT count(*) FROM document_updates_staged") == 0
    assert await count(database, "SELECT count(*) FROM document_updates") == 3
    assert (await store.load(RESOURCE)).updates == [update(r) for r in range(1, 4)]


async def test_appends_are_staged_in_arrival_order(database: SqliteDatabase) -> None:
    """The staging table is a log: whatever documents a commit's updates belong to, they go
    to its end (its last page), not each to its document's place in a key order."""
    store = SqliteDocumentStore(database, fold_rows=100)
    await database.open()
    arrivals = [(OTHER, 1), (RESOURCE, 1), (OTHER, 2), (RESOURCE, 2)]
    for resource_id, revision in arrivals:
        await store.append(resource_id, revision, update(revision))

    def in_storage_order(connection: sqlite3.Connection) -> list[tuple[str, int]]:
        rows = connection.execute(
            "SELECT resource_id, revision FROM document_updates_staged ORDER BY rowid"
        )
        return [(str(resource_id), int(revision)) for resource_id, revision in rows]

    assert await database.read(in_storage_order) == arrivals


async def test_a_staging_table_keyed_as_before_is_rebuilt_as_a_log(tmp_path: Path) -> None:
    """Files from 2026-12-03 have the staging table clustered by key: a start moves its rows
    into document_updates and rebuilds it in arrival order."""
    path = tmp_path / "keyed.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute(
            "CREATE TABLE document_updates_staged (resource_id TEXT NOT NULL,"
            " revision INTEGER NOT NULL, data BLOB NOT NULL,"
            " PRIMARY KEY (resource_id, revision)) WITHOUT ROWID"
        )
        for revision in (2, 1):
            raw.execute(
                "INSERT INTO document_updates_staged VALUES (?, ?, ?)",
                (RESOURCE, revision, update(revision)),
            )
    finally:
        raw.close()

    database = SqliteDatabase(path)
    store = SqliteDocumentStore(database, fold_rows=100)
    await database.open()
    try:
        definition = await database.read(
            lambda connection: connection.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'document_updates_staged'"
            ).fetchone()[0]
        )
        assert "WITHOUT ROWID" not in definition
        assert await count(database, "SELECT count(*) FROM document_updates") == 2
        await store.append(RESOURCE, 3, update(3))
        assert (await store.load(RESOURCE)).updates == [update(r) for r in range(1, 4)]
    finally:
        await database.close()


async def test_a_fold_that_fails_keeps_every_append(database: SqliteDatabase) -> None:
    """Upkeep must not cost writes: while the large table refuses rows, appends still commit
    (in the staging table) and the fold is retried once per ``fold_rows`` appends, not on every
    commit; the first retry after the table accepts rows again moves them all."""
    store = SqliteDocumentStore(database, fold_rows=3)
    await database.open()

    await refuse_inserts_into(database, "document_updates")
    with capture_logs() as logs:
        for revision in range(1, 8):
            await store.append(RESOURCE, revision, update(revision))
    assert await count(database, "SELECT count(*) FROM document_updates_staged") == 7
    assert [entry["staged"] for entry in logs if entry["event"] == "document_fold_failed"] == [3, 6]
    assert database.healthy

    await accept_inserts_again(database)
    await store.append(RESOURCE, 8, update(8))
    assert await count(database, "SELECT count(*) FROM document_updates_staged") == 8
    await store.append(RESOURCE, 9, update(9))
    assert await count(database, "SELECT count(*) FROM document_updates_staged") == 0
    assert (await store.load(RESOURCE)).updates == [update(r) for r in range(1, 10)]


def test_a_fold_size_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fold_rows"):
        SqliteDocumentStore(SqliteDatabase(tmp_path / "x.sqlite3"), fold_rows=0)
    with pytest.raises(ValueError, match="index_rows"):
        SqliteAuditStore(SqliteDatabase(tmp_path / "x.sqlite3"), index_rows=0)


# --- audit indexes ------------------------------------------------------------------------------


def event(user_id: str | None, resource_id: str | None) -> AuditEvent:
    return AuditEvent(
        AuditEventType.DOCUMENT_UPDATED,
        occurred_at=1_700_000_000_000,
        instance_id="test",
        user_id=user_id,
        resource_id=resource_id,
    )


#: Who did what, in order: two users, two resources, and records without one or the other.
EVENTS = [
    event(user, resource)
    for user, resource in [
        ("alice", RESOURCE),
        ("bob", OTHER),
        ("alice", OTHER),
        (None, RESOURCE),
        ("bob", None),
        ("alice", RESOURCE),
        ("bob", RESOURCE),
    ]
]


async def seqs(database: SqliteDatabase, sql: str, value: str) -> list[int]:
    def query(connection: sqlite3.Connection) -> list[int]:
        return [int(row[0]) for row in connection.execute(sql, (value,))]

    return await database.read(query)


async def assert_views_match_the_log(database: SqliteDatabase) -> None:
    for key, values in (("user", ("alice", "bob")), ("resource", (RESOURCE, OTHER))):
        for value in values:
            indexed = await seqs(
                database,
                f"SELECT seq FROM audit_log_by_{key} WHERE {key}_id = ? ORDER BY seq",
                value,
            )
            scanned = await seqs(
                database, f"SELECT seq FROM audit_log WHERE {key}_id = ? ORDER BY seq", value
            )
            assert indexed == scanned, (key, value)


async def test_the_views_find_every_record_before_and_after_a_fold(
    database: SqliteDatabase,
) -> None:
    store = SqliteAuditStore(database, index_rows=3)
    await database.open()
    for item in EVENTS * 3:
        await store.append([item])
        await assert_views_match_the_log(database)

    # One record per append, a fold every third: the last fold took the head to the last record.
    assert await count(database, "SELECT seq FROM audit_index_head") == 21
    assert await count(database, "SELECT count(*) FROM audit_user_index") == 18
    assert await count(database, "SELECT count(*) FROM audit_resource_index") == 18


async def test_an_index_fold_that_fails_keeps_every_record_in_the_views(
    database: SqliteDatabase,
) -> None:
    """While an index table refuses rows, records still commit and the views still show them
    (from the unindexed tail); the first fold after that indexes them all."""
    store = SqliteAuditStore(database, index_rows=2)
    await database.open()

    await refuse_inserts_into(database, "audit_resource_index")
    with capture_logs() as logs:
        for item in EVENTS:
            await store.append([item])
    failed = [entry["unindexed"] for entry in logs if entry["event"] == "audit_index_fold_failed"]
    assert failed == [2, 4, 6]  # once per index_rows records, not on every append
    assert await count(database, "SELECT count(*) FROM audit_log") == len(EVENTS)
    assert await count(database, "SELECT seq FROM audit_index_head") == 0  # no fold went through
    assert await count(database, "SELECT count(*) FROM audit_user_index") == 0  # undone as one
    await assert_views_match_the_log(database)
    assert database.healthy

    await accept_inserts_again(database)
    await store.append([EVENTS[0]])
    assert await count(database, "SELECT seq FROM audit_index_head") == len(EVENTS) + 1
    await assert_views_match_the_log(database)


async def test_a_view_is_answered_by_its_index_table(database: SqliteDatabase) -> None:
    SqliteAuditStore(database)
    await database.open()

    def plan(connection: sqlite3.Connection) -> str:
        rows = connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM audit_log_by_user WHERE user_id = ? ORDER BY seq",
            ("alice",),
        )
        return "\n".join(str(row[3]) for row in rows)

    steps = await database.read(plan)
    assert "SEARCH i USING PRIMARY KEY (user_id=?)" in steps, steps
    assert "SCAN a" not in steps, steps  # the unfolded tail is read by seq, not scanned


async def test_a_file_with_the_old_secondary_indexes_is_upgraded(
    database: SqliteDatabase,
) -> None:
    store = SqliteAuditStore(database)
    await database.open()
    await store.append(EVENTS)
    await database.close()

    def as_an_older_version_left_it(connection: sqlite3.Connection) -> None:
        for table in ("audit_user_index", "audit_resource_index", "audit_index_head"):
            connection.execute(f"DROP TABLE {table}")
        for view in ("audit_log_by_user", "audit_log_by_resource"):
            connection.execute(f"DROP VIEW {view}")
        connection.execute("CREATE INDEX audit_log_user_id ON audit_log (user_id)")
        connection.execute("CREATE INDEX audit_log_resource_id ON audit_log (resource_id)")

    raw = sqlite3.connect(database.path, isolation_level=None)
    try:
        as_an_older_version_left_it(raw)
    finally:
        raw.close()

    SqliteAuditStore(database)
    await database.open()
    old_indexes = await count(
        database,
        "SELECT count(*) FROM sqlite_master WHERE name IN"
        " ('audit_log_user_id', 'audit_log_resource_id')",
    )
    assert old_indexes == 0
    assert await count(database, "SELECT seq FROM audit_index_head") == len(EVENTS)
    await assert_views_match_the_log(database)
