"""Y.js documents in the embedded SQLite file: one snapshot per resource plus the updates after it.

Appends go through the shared writer (:class:`~collabgate.storage.sqlite.SqliteDatabase`), so
concurrent appends from every room share one fsync, and an append returns only once durable.
The appends of one batch are checked and inserted together: a fixed number of statements per
batch, not two per update (see the writer's notes on the GIL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TypeVar

import orjson

from collabgate.documents.port import DuplicateRevisionError, StoredDocument
from collabgate.storage.sqlite import SqliteDatabase

# DuplicateRevisionError now lives in the port; re-exported here for existing importers.
__all__ = ["SCHEMA", "DuplicateRevisionError", "SqliteDocumentStore"]

#: Rows per multi-row statement: far below SQLite's limit on bound variables (32,766).
ROWS_PER_STATEMENT = 500

#: One queued append: resource id, revision, update.
_Append = tuple[str, int, bytes]
T = TypeVar("T")

SCHEMA = (
    # Rowid table: snapshots are large blobs, which WITHOUT ROWID tables store poorly.
    """CREATE TABLE IF NOT EXISTS document_snapshots (
        resource_id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        snapshot BLOB NOT NULL
    )""",
    # Clustered on (resource_id, revision): a load is one range scan, an append one b-tree insert.
    """CREATE TABLE IF NOT EXISTS document_updates (
        resource_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (resource_id, revision)
    ) WITHOUT ROWID""",
)


class SqliteDocumentStore:
    """:class:`~collabgate.documents.port.DocumentStore` on a shared :class:`SqliteDatabase`.

    The database is shared with the audit store and owned by whoever created it: :meth:`close`
    stops this store and leaves the database open.
    """

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database
        self._closed = False
        database.add_schema(SCHEMA)

    async def load(self, resource_id: str) -> StoredDocument:
        self._check_open()
        return await self._db.read(partial(_load, resource_id))

    async def append(self, resource_id: str, revision: int, update: bytes) -> None:
        self._check_open()
        if revision < 1:
            raise ValueError(f"revision must be at least 1 (got {revision})")
        item: _Append = (resource_id, revision, bytes(update))
        await self._db.write_many(_append_many, item)

    async def compact(self, resource_id: str, revision: int, snapshot: bytes) -> None:
        self._check_open()
        await self._db.write(partial(_compact, resource_id, revision, bytes(snapshot)))

    async def close(self) -> None:
        """Appends are durable when they return, so there is nothing left to commit here."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the document store is closed")


def _load(resource_id: str, connection: sqlite3.Connection) -> StoredDocument:
    """Runs in one read transaction: a compaction can't slip between the two queries."""
    row = connection.execute(
        "SELECT revision, snapshot FROM document_snapshots WHERE resource_id = ?", (resource_id,)
    ).fetchone()
    snapshot_revision, snapshot = (int(row[0]), bytes(row[1])) if row else (0, None)
    rows = connection.execute(
        "SELECT revision, data FROM document_updates WHERE resource_id = ? AND revision > ?"
        " ORDER BY revision",
        (resource_id, snapshot_revision),
    ).fetchall()
    updates = [bytes(data) for _, data in rows]
    last_revision = int(rows[-1][0]) if rows else snapshot_revision
    return StoredDocument(snapshot, snapshot_revision, updates, last_revision)


def _append_many(
    connection: sqlite3.Connection, items: list[_Append]
) -> Sequence[DuplicateRevisionError | None]:
    """Insert, never overwrite; revisions only grow: one at or below a stored one is refused
    (it could slip under a compaction that loaded before it and be deleted unseen).

    The batch is checked against the highest stored revision of each of its resources, read
    once, and against the appends before it in the batch; the accepted ones are inserted with
    one statement per :data:`ROWS_PER_STATEMENT`.
    """
    top = _highest_revisions(connection, list({resource_id for resource_id, _, _ in items}))
    accepted: list[_Append] = []
    outcomes: list[DuplicateRevisionError | None] = []
    for item in items:
        resource_id, revision, _ = item
        if revision <= top.get(resource_id, 0):
            outcomes.append(DuplicateRevisionError(resource_id, revision))
            continue
        top[resource_id] = revision
        accepted.append(item)
        outcomes.append(None)
    for rows in _chunks(accepted):
        connection.execute(
            "INSERT INTO document_updates (resource_id, revision, data) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(rows)),
            [value for row in rows for value in row],
        )
    return outcomes


def _highest_revisions(connection: sqlite3.Connection, resource_ids: list[str]) -> dict[str, int]:
    """The highest revision stored for each resource, in its snapshot or its updates.

    One row per query (a JSON object): every row a cursor yields is another GIL hand-off.
    """
    top: dict[str, int] = {}
    for ids in _chunks(resource_ids):
        (found,) = connection.execute(
            "WITH wanted (resource_id) AS (VALUES " + ", ".join(["(?)"] * len(ids)) + ")"
            " SELECT json_group_object(resource_id, max("
            "  coalesce((SELECT max(revision) FROM document_updates u"
            "            WHERE u.resource_id = wanted.resource_id), 0),"
            "  coalesce((SELECT revision FROM document_snapshots s"
            "            WHERE s.resource_id = wanted.resource_id), 0)))"
            " FROM wanted",
            ids,
        ).fetchone()
        top.update(orjson.loads(found))
    return top


def _chunks(values: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(values), ROWS_PER_STATEMENT):
        yield values[start : start + ROWS_PER_STATEMENT]


def _compact(
    resource_id: str, revision: int, snapshot: bytes, connection: sqlite3.Connection
) -> None:
    """Upsert the snapshot and drop the updates it covers, in the caller's transaction.

    A snapshot older than the stored one is ignored, so compactions finishing out of order
    never move a document backwards.
    """
    connection.execute(
        "INSERT INTO document_snapshots (resource_id, revision, snapshot) VALUES (?, ?, ?)"
        " ON CONFLICT (resource_id) DO UPDATE SET"
        " revision = excluded.revision, snapshot = excluded.snapshot"
        " WHERE excluded.revision > document_snapshots.revision",
        (resource_id, revision, snapshot),
    )
    connection.execute(
        "DELETE FROM document_updates WHERE resource_id = ? AND revision <= ?",
        (resource_id, revision),
    )
