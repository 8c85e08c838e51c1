"""Y.js documents in PostgreSQL: one snapshot per resource plus the updates after it.

Appends go through the ``documents`` lane of the shared group-commit writer
(:class:`~collabgate.storage.postgres.PostgresDatabase`): all appends queued while a commit is in
flight are stored by ONE ``INSERT ... SELECT FROM unnest(...)`` in ONE transaction, and each
returns only once that transaction is committed. A duplicate revision fails its own append only:
the insert skips it (``ON CONFLICT DO NOTHING`` / covered by the snapshot) and the append gets
:class:`~collabgate.documents.port.DuplicateRevisionError`, as with SQLite.

An update's audit record (``DOCUMENT_UPDATED``), when the caller gives one, is chained by the
audit store in the same transaction as the update
(:meth:`~collabgate.audit.postgres.PostgresAuditStore.append_in_transaction`), so a crash can't
leave a stored update without its record. That transaction takes the audit head lock once per
batch, after its insert, and holds it until its commit.

Tables (migration 0001): ``document_snapshots (resource_id PK, revision, snapshot)`` and
``document_updates (resource_id, revision, data, PRIMARY KEY (resource_id, revision))``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final

from collabgate.audit.chain import PreparedEvent
from collabgate.audit.port import AuditEvent
from collabgate.audit.postgres import PostgresAuditStore
from collabgate.documents.port import (
    DuplicateRevisionError,
    QueuedAppend,
    StoredDocument,
    queued_append,
)
from collabgate.storage.postgres import Connection, PostgresDatabase

LANE: Final = "documents"

#: One stored update: resource id, revision, update.
_Append = tuple[str, int, bytes]
#: Chains audit records in the lane's transaction in progress.
_ChainRecords = Callable[[Connection, list[PreparedEvent]], Awaitable[None]]

#: Stores every item whose revision is above everything stored for its resource (updates and
#: snapshot); returns what it stored. Revisions only grow: an update numbered below one already
#: stored could slip under a compaction that loaded before it and be deleted unseen.
#: Rows go in in key order: two instances inserting the same keys (a revision both took) wait
#: on each other's uncommitted row, and in different orders each waited for the other, a
#: deadlock that aborted both batches (bench/cluster.py, docs/performance.md).
_INSERT_UPDATES = """
    INSERT INTO document_updates (resource_id, revision, data)
    SELECT u.resource_id, u.revision, u.data
    FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS u(resource_id, revision, data)
    WHERE NOT EXISTS (
        SELECT 1 FROM document_snapshots s
        WHERE s.resource_id = u.resource_id AND s.revision >= u.revision
    )
    AND NOT EXISTS (
        SELECT 1 FROM document_updates d
        WHERE d.resource_id = u.resource_id AND d.revision >= u.revision
    )
    ORDER BY u.resource_id, u.revision
    ON CONFLICT (resource_id, revision) DO NOTHING
    RETURNING resource_id, revision
"""

#: One statement, so one snapshot of the data: a compaction can't slip between the two parts.
_LOAD = """
    WITH snapshot AS (
        SELECT revision, snapshot FROM document_snapshots WHERE resource_id = $1
    )
    SELECT 0 AS part, revision, snapshot AS data FROM snapshot
    UNION ALL
    SELECT 1, u.revision, u.data FROM document_updates u
    WHERE u.resource_id = $1
      AND u.revision > coalesce((SELECT revision FROM snapshot), 0)
    ORDER BY part, revision
"""

#: Both reads are one index probe: the updates' primary key, the snapshots' primary key.
_LAST_REVISION = """
    SELECT greatest(
        coalesce((SELECT max(revision) FROM document_updates WHERE resource_id = $1), 0),
        coalesce((SELECT revision FROM document_snapshots WHERE resource_id = $1), 0)
    )
"""

#: Upsert the snapshot unless a newer one is stored, and drop the updates it covers, in one
#: statement (so in the caller's transaction).
_COMPACT = """
    WITH upsert AS (
        INSERT INTO document_snapshots AS s (resource_id, revision, snapshot)
        VALUES ($1, $2, $3)
        ON CONFLICT (resource_id) DO UPDATE
            SET revision = excluded.revision, snapshot = excluded.snapshot
            WHERE excluded.revision > s.revision
    )
    DELETE FROM document_updates WHERE resource_id = $1 AND revision <= $2
"""


class PostgresDocumentStore:
    """:class:`~collabgate.documents.port.DocumentStore` on a shared :class:`PostgresDatabase`.

    The database is shared with the audit store and owned by whoever created it: :meth:`close`
    stops this store and leaves the database open. ``audit``, the audit store on the same
    database, chains the records given with appends; without it, an append with a record is
    refused.
    """

    def __init__(
        self, database: PostgresDatabase, *, audit: PostgresAuditStore | None = None
    ) -> None:
        if audit is not None and audit.database is not database:
            raise ValueError("the audit store must write to the same PostgreSQL database")
        self._db = database
        self._closed = False
        self._audited = audit is not None
        # One object for every append: the lane runs consecutive writes of one operation together.
        self._append_many = partial(
            _append_many, chain_records=audit.append_in_transaction if audit is not None else None
        )

    async def load(self, resource_id: str) -> StoredDocument:
        self._check_open()
        rows = await self._db.read(partial(_load, resource_id))
        snapshot: bytes | None = None
        snapshot_revision = 0
        updates: list[bytes] = []
        last_revision = 0
        for part, revision, data in rows:
            if part == 0:
                snapshot, snapshot_revision = bytes(data), int(revision)
            else:
                updates.append(bytes(data))
            last_revision = int(revision)
        return StoredDocument(snapshot, snapshot_revision, updates, last_revision)

    async def last_revision(self, resource_id: str) -> int:
        self._check_open()
        return await self._db.read(partial(_last_revision, resource_id))

    async def append(
        self, resource_id: str, revision: int, update: bytes, record: AuditEvent | None = None
    ) -> None:
        self._check_open()
        item = queued_append(resource_id, revision, update, record, audited=self._audited)
        await self._db.write_many(self._append_many, item, lane=LANE)

    async def compact(self, resource_id: str, revision: int, snapshot: bytes) -> None:
        """Replace the updates up to ``revision`` by ``snapshot``; an older snapshot is ignored."""
        self._check_open()
        await self._db.write(partial(_compact, resource_id, revision, bytes(snapshot)), lane=LANE)

    async def close(self) -> None:
        """Appends are durable when they return, so there is nothing left to commit here."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the document store is closed")


async def _load(resource_id: str, connection: Connection) -> list[tuple[int, int, bytes]]:
    rows = await connection.fetch(_LOAD, resource_id)
    return [(int(row[0]), int(row[1]), bytes(row[2])) for row in rows]


async def _last_revision(resource_id: str, connection: Connection) -> int:
    return int(await connection.fetchval(_LAST_REVISION, resource_id))


async def _append_many(
    connection: Connection, items: list[QueuedAppend], *, chain_records: _ChainRecords | None = None
) -> Sequence[Exception | None]:
    """Store a batch of appends with one statement; refuse duplicates one by one; chain the
    audit records of the stored ones with ``chain_records`` in the same transaction.

    A revision repeated within the batch is stored once, for its first append; the later ones
    are refused like any other duplicate.
    """
    first: dict[tuple[str, int], int] = {}
    for index, ((resource_id, revision, _), _) in enumerate(items):
        first.setdefault((resource_id, revision), index)
    unique = sorted(items[index][0] for index in first.values())
    rows = await connection.fetch(
        _INSERT_UPDATES,
        [resource_id for resource_id, _, _ in unique],
        [revision for _, revision, _ in unique],
        [data for _, _, data in unique],
    )
    stored = {(str(row[0]), int(row[1])) for row in rows}
    outcomes: list[Exception | None] = []
    records: list[PreparedEvent] = []
    for index, ((resource_id, revision, _), record) in enumerate(items):
        key = (resource_id, revision)
        ok = key in stored and first[key] == index
        outcomes.append(None if ok else DuplicateRevisionError(resource_id, revision))
        if ok and record is not None:
            records.append(record)
    if records:
        if chain_records is None:
            raise ValueError("audit records given to a document store without an audit store")
        await chain_records(connection, records)
    return outcomes


async def _compact(
    resource_id: str, revision: int, snapshot: bytes, connection: Connection
) -> None:
    await connection.execute(_COMPACT, resource_id, revision, snapshot)
