"""Y.js documents in the embedded SQLite file: one snapshot per resource plus the updates after it.

Appends go through the shared writer (:class:`~collabgate.storage.sqlite.SqliteDatabase`), so
concurrent appends from every room share one fsync, and an append's future is done only once
durable. The appends of one batch are checked and inserted together: a fixed number of
statements per batch, not two per update (see the writer's notes on the GIL).

Appends land in a small staging table first and move to ``document_updates`` in bulk. A commit
writes every page it dirtied to the WAL whole. ``document_updates`` is clustered on (resource_id,
revision), so the updates of one commit to different documents would each dirty a page of their
own there (4 KB written for a 40-byte update). The staging table is a plain log in arrival order,
so a commit's updates share its last page whatever documents they belong to. Once it holds
``fold_rows`` updates, they move in one ``INSERT … SELECT`` sorted by key, so each page of
``document_updates`` is written once per fold, not once per commit (bench/sqlite_writes.py
measures the difference). Every read and check looks at both tables; the staging table has no
index, so they scan it, which its bound (``fold_rows`` rows) keeps cheap. Both are written in
the same transactions, so nothing is durable in one and not the other.

An update's audit record (``DOCUMENT_UPDATED``), when the caller gives one, is chained by the
audit store in the same transaction as the update (:meth:`SqliteAuditStore.append_in_transaction`):
one commit makes both durable, so a crash can't leave a stored update without its record.

The revision check of an append (revisions only grow) needs the highest stored revision of the
resource. Read from the tables, that is a scan of the staging table per batch: most of the
writer's work for a commit of a few updates. :class:`RevisionHeads` keeps it in memory instead,
exact because the writer thread is the only writer of its connection and learns how each
transaction ended; a commit by any other connection to the file (``PRAGMA data_version``) makes
it read the tables again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

import orjson

from collabgate.audit.chain import PreparedEvent
from collabgate.audit.sqlite import SqliteAuditStore
from collabgate.documents.port import (
    QueuedAppend,
    StoredDocument,
    StoredUpdate,
    UpdateRecord,
    number_above,
    queued_append,
)
from collabgate.storage.sqlite import SqliteDatabase, fold_when_due

__all__ = ["SCHEMA", "SqliteDocumentStore"]

#: Rows per multi-row statement: far below SQLite's limit on bound variables (32,766).
ROWS_PER_STATEMENT = 500

#: Staged updates that make a batch move them into ``document_updates``.
FOLD_ROWS = 2048

#: Resources whose highest revision :class:`RevisionHeads` keeps; past it, it starts again empty.
HEADS_KEPT = 65_536

#: Chains audit records in the writer's transaction in progress.
_ChainRecords = Callable[[sqlite3.Connection, list[PreparedEvent]], None]
T = TypeVar("T")

#: Moves the staged updates into the large table, sorted into its key order.
_FOLD = (
    "INSERT INTO document_updates (resource_id, revision, data)"
    " SELECT resource_id, revision, data FROM document_updates_staged"
    " ORDER BY resource_id, revision"
)

#: The staging table: no key, so rows are stored in arrival order and every append goes to the
#: last page. (Files of the previous layout have it clustered by key; every start rebuilds it.)
_STAGED_TABLE = """CREATE TABLE {exists}document_updates_staged (
        resource_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        data BLOB NOT NULL
    )"""

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
    _STAGED_TABLE.format(exists="IF NOT EXISTS "),
    # Every start moves what is staged, then rebuilds the (empty) staging table in this layout.
    _FOLD,
    "DROP TABLE document_updates_staged",
    _STAGED_TABLE.format(exists=""),
)


class SqliteDocumentStore:
    """:class:`~collabgate.documents.port.DocumentStore` on a shared :class:`SqliteDatabase`.

    The database is shared with the audit store and owned by whoever created it: :meth:`close`
    stops this store and leaves the database open. ``audit``, the audit store on the same
    database, chains the records given with appends; without it, an append with a record is
    refused.
    """

    def __init__(
        self,
        database: SqliteDatabase,
        *,
        audit: SqliteAuditStore | None = None,
        fold_rows: int = FOLD_ROWS,
    ) -> None:
        if fold_rows < 1:
            raise ValueError(f"fold_rows must be at least 1 (got {fold_rows})")
        if audit is not None and audit.database is not database:
            raise ValueError("the audit store must write to the same SQLite database")
        self._db = database
        self._closed = False
        self._audited = audit is not None
        heads = RevisionHeads()
        # One object for every append: the writer runs consecutive writes of one operation together.
        self._append_many = partial(
            _append_many,
            fold_rows=fold_rows,
            heads=heads,
            chain_records=audit.append_in_transaction if audit is not None else None,
        )
        database.add_schema(SCHEMA)
        database.add_transaction_listener(heads.transaction_ended)

    async def load(self, resource_id: str) -> StoredDocument:
        self._check_open()
        return await self._db.read(partial(_load, resource_id))

    def append(
        self, resource_id: str, revision: int, update: bytes, record: UpdateRecord | None = None
    ) -> asyncio.Future[int]:
        self._check_open()
        item = queued_append(resource_id, revision, update, record, audited=self._audited)
        return self._db.write_many(self._append_many, item)

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
        "SELECT revision, data FROM document_updates WHERE resource_id = ?1 AND revision > ?2"
        " UNION ALL"
        " SELECT revision, data FROM document_updates_staged WHERE resource_id = ?1 AND revision > ?2"
        " ORDER BY revision",
        (resource_id, snapshot_revision),
    ).fetchall()
    updates = [bytes(data) for _, data in rows]
    last_revision = int(rows[-1][0]) if rows else snapshot_revision
    return StoredDocument(snapshot, snapshot_revision, updates, last_revision)


class RevisionHeads:
    """The highest revision stored for each resource, kept by the writer thread.

    Only the writer thread uses it: :meth:`highest` and :meth:`record` from the append
    operation, :meth:`transaction_ended` as the database's transaction listener. What a
    transaction appended is pending until it commits, and forgotten if it rolls back. A
    resource not known here is read from the tables, and so is every resource once another
    connection has committed to the file, or this one is new (the database was reopened).
    """

    __slots__ = ("_committed", "_connection", "_data_version", "_pending")

    def __init__(self) -> None:
        self._committed: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._connection: sqlite3.Connection | None = None
        self._data_version: int | None = None

    def highest(self, connection: sqlite3.Connection, resource_ids: list[str]) -> dict[str, int]:
        """The highest revision stored (committed, or appended earlier in this transaction)."""
        self._forget_if_stale(connection)
        top: dict[str, int] = {}
        unknown: list[str] = []
        for resource_id in resource_ids:
            revision = self._pending.get(resource_id) or self._committed.get(resource_id)
            if revision is None:
                unknown.append(resource_id)
            else:
                top[resource_id] = revision
        if unknown:
            # Nothing of these is pending, so the tables hold their committed revisions.
            stored = _highest_revisions(connection, unknown)
            for resource_id in unknown:
                top[resource_id] = self._committed[resource_id] = stored.get(resource_id, 0)
        return top

    def record(self, accepted: list[StoredUpdate]) -> None:
        """Note what this transaction has just inserted."""
        pending = self._pending
        for resource_id, revision, _ in accepted:
            pending[resource_id] = revision

    def transaction_ended(self, committed: bool) -> None:
        if committed and self._pending:
            self._committed.update(self._pending)
            if len(self._committed) > HEADS_KEPT:
                self._committed.clear()
        self._pending.clear()

    def _forget_if_stale(self, connection: sqlite3.Connection) -> None:
        (version,) = connection.execute("PRAGMA data_version").fetchone()
        if connection is not self._connection or version != self._data_version:
            self._committed.clear()
            self._connection, self._data_version = connection, version


def _append_many(
    connection: sqlite3.Connection,
    items: list[QueuedAppend],
    *,
    fold_rows: int = FOLD_ROWS,
    heads: RevisionHeads | None = None,
    chain_records: _ChainRecords | None = None,
) -> Sequence[int]:
    """Insert, never overwrite; revisions only grow: an append numbered at or below a stored
    revision is stored under the next one above it (see ``DocumentStore.append``). Returns the
    revisions stored.

    The batch is numbered against the highest stored revision of each of its resources (from
    ``heads``, or read from the tables without it) and against the appends before it in the
    batch; the updates are staged with one statement per :data:`ROWS_PER_STATEMENT`, then
    folded once ``fold_rows`` are staged. Their audit records are chained by ``chain_records``
    in the same transaction.
    """
    resource_ids = list({update[0] for update, _, _ in items})
    top = (
        heads.highest(connection, resource_ids)
        if heads is not None
        else _highest_revisions(connection, resource_ids)
    )
    accepted, records = number_above(items, top)
    insert_updates(connection, "document_updates_staged", accepted)
    if accepted:
        if heads is not None:
            heads.record(accepted)
        _fold_when_full(connection, len(accepted), fold_rows)
    if records:
        if chain_records is None:
            raise ValueError("audit records given to a document store without an audit store")
        chain_records(connection, records)
    return [revision for _, revision, _ in accepted]


def insert_updates(connection: sqlite3.Connection, table: str, rows: list[StoredUpdate]) -> None:
    """Insert ``rows`` into ``table`` with one statement per :data:`ROWS_PER_STATEMENT`."""
    for chunk in _chunks(rows):
        connection.execute(
            f"INSERT INTO {table} (resource_id, revision, data) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(chunk)),
            [value for row in chunk for value in row],
        )


def _fold_when_full(connection: sqlite3.Connection, added: int, fold_rows: int) -> None:
    """Move the staged updates into ``document_updates`` once there are ``fold_rows``.

    A fold that fails is undone alone and logged: the appends of the batch still commit (the
    staging table only grows until a later fold succeeds, tried once per ``fold_rows`` more),
    and nothing is lost or doubled.
    """
    # The highest rowid, not count(*): the same while only appends and folds touch the table
    # (a compaction's deletes leave it a little high), without reading every page.
    (staged,) = connection.execute(
        "SELECT coalesce(max(rowid), 0) FROM document_updates_staged"
    ).fetchone()
    fold_when_due(
        connection,
        "fold_document_updates",
        _fold,
        waiting=staged,
        added=added,
        every=fold_rows,
        failed_event="document_fold_failed",
        staged=staged,
    )


def _fold(connection: sqlite3.Connection) -> None:
    connection.execute(_FOLD)
    connection.execute("DELETE FROM document_updates_staged")


def _highest_revisions(connection: sqlite3.Connection, resource_ids: list[str]) -> dict[str, int]:
    """The highest revision stored for each resource, in its snapshot or its updates.

    One row per query (a JSON object): every row a cursor yields is another GIL hand-off.
    """
    top: dict[str, int] = {}
    for ids in _chunks(resource_ids):
        wanted = ", ".join(["(?)"] * len(ids))
        (found,) = connection.execute(
            f"WITH wanted (resource_id) AS (VALUES {wanted}),"
            # One scan of the staging table (it has no index) for all the wanted resources.
            " staged (resource_id, revision) AS MATERIALIZED ("
            "  SELECT resource_id, max(revision) FROM document_updates_staged"
            "  WHERE resource_id IN (SELECT resource_id FROM wanted) GROUP BY resource_id)"
            " SELECT json_group_object(resource_id, max("
            "  coalesce((SELECT max(revision) FROM document_updates u"
            "            WHERE u.resource_id = wanted.resource_id), 0),"
            "  coalesce((SELECT revision FROM staged g"
            "            WHERE g.resource_id = wanted.resource_id), 0),"
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
    for table in ("document_updates", "document_updates_staged"):
        connection.execute(
            f"DELETE FROM {table} WHERE resource_id = ? AND revision <= ?",
            (resource_id, revision),
        )
