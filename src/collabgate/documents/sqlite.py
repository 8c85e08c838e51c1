"""Y.js documents in the embedded SQLite file: one snapshot per resource plus the updates after it.

Appends go through the shared writer (:class:`~collabgate.storage.sqlite.SqliteDatabase`), so
concurrent appends from every room share one fsync, and an append returns only once durable.
"""

from __future__ import annotations

import sqlite3
from functools import partial

from collabgate.documents.port import DuplicateRevisionError, StoredDocument
from collabgate.storage.sqlite import SqliteDatabase

# DuplicateRevisionError now lives in the port; re-exported here for existing importers.
__all__ = ["SCHEMA", "DuplicateRevisionError", "SqliteDocumentStore"]

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
        await self._db.write(partial(_append, resource_id, revision, bytes(update)))

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


def _append(resource_id: str, revision: int, update: bytes, connection: sqlite3.Connection) -> None:
    """Insert, never overwrite; revisions only grow: one at or below a stored one is refused
    (it could slip under a compaction that loaded before it and be deleted unseen)."""
    taken = connection.execute(
        "SELECT 1 FROM document_snapshots WHERE resource_id = ? AND revision >= ?"
        " UNION ALL SELECT 1 FROM document_updates WHERE resource_id = ? AND revision >= ?"
        " LIMIT 1",
        (resource_id, revision, resource_id, revision),
    ).fetchone()
    if taken is not None:
        raise DuplicateRevisionError(resource_id, revision)
    try:
        connection.execute(
            "INSERT INTO document_updates (resource_id, revision, data) VALUES (?, ?, ?)",
            (resource_id, revision, update),
        )
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
            raise DuplicateRevisionError(resource_id, revision) from None
        raise


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
