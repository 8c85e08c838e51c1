"""Y.js documents in PostgreSQL: one snapshot per resource plus the updates after it.

Appends go through the ``documents`` lane of the shared group-commit writer
(:class:`~collabgate.storage.postgres.PostgresDatabase`): all appends queued while a commit is in
flight are stored by ONE ``INSERT ... SELECT FROM unnest(...)`` in ONE transaction, and each
one's future is done only once that transaction is committed.

Several instances number the edits of one resource from their own copies, so two of them often
pick the same next revision. The batch transaction therefore takes the documents' append lock
first (one advisory lock for every instance), then reads the highest revision stored of each of
its resources, and numbers each update above it: an update whose revision another instance has
stored meanwhile is stored under the next free one, with no retry and no round trip back to the
caller. The lock orders every instance's appends; it costs no parallelism an audited append had,
since each of them also waits for the audit head lock (below) until its commit.

An update's audit record (``DOCUMENT_UPDATED``), when the caller gives one, is chained by the
audit store in the same transaction as the update
(:meth:`~collabgate.audit.postgres.PostgresAuditStore.append_in_transaction`), so a crash can't
leave a stored update without its record. That transaction takes the audit head lock once per
batch, after its insert, and holds it until its commit. Locks are always taken in that order
(the append lock, then the head lock), so appends and the audit trail's own writes can't wait on
each other in a cycle.

Tables (migration 0001): ``document_snapshots (resource_id PK, revision, snapshot)`` and
``document_updates (resource_id, revision, data, PRIMARY KEY (resource_id, revision))``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final

from collabgate.audit.chain import PreparedEvent
from collabgate.audit.postgres import PostgresAuditStore
from collabgate.documents.port import (
    QueuedAppend,
    StoredDocument,
    UpdateRecord,
    number_above,
    queued_append,
)
from collabgate.storage.postgres import Connection, PostgresDatabase

LANE: Final = "documents"

#: Chains audit records in the lane's transaction in progress.
_ChainRecords = Callable[[Connection, list[PreparedEvent]], Awaitable[None]]

#: The documents' append lock (``pg_advisory_xact_lock``): held by each append batch from its
#: first statement to its commit, on every instance. ("cgdu", apart from the migrations' key.)
APPEND_LOCK_KEY: Final = 0x63676475

_LOCK_APPENDS = "SELECT pg_advisory_xact_lock($1)"

#: The highest revision stored of each resource, in its updates or its snapshot. A statement of
#: its own after the lock: one that took the lock would read from a snapshot taken before it.
_HIGHEST_REVISIONS = """
    SELECT r.resource_id, greatest(
        coalesce((SELECT max(d.revision) FROM document_updates d
                  WHERE d.resource_id = r.resource_id), 0),
        coalesce((SELECT s.revision FROM document_snapshots s
                  WHERE s.resource_id = r.resource_id), 0)
    )
    FROM unnest($1::text[]) AS r(resource_id)
"""

_INSERT_UPDATES = """
    INSERT INTO document_updates (resource_id, revision, data)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
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

    def append(
        self, resource_id: str, revision: int, update: bytes, record: UpdateRecord | None = None
    ) -> asyncio.Future[int]:
        self._check_open()
        item = queued_append(resource_id, revision, update, record, audited=self._audited)
        return self._db.write_many(self._append_many, item, lane=LANE)

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


async def _append_many(
    connection: Connection, items: list[QueuedAppend], *, chain_records: _ChainRecords | None = None
) -> Sequence[int]:
    """Store a batch of appends above everything stored, with one statement, under the append
    lock; chain their audit records with ``chain_records`` in the same transaction. Returns the
    revisions stored: each item's own, or the next free one when it is taken."""
    await connection.execute(_LOCK_APPENDS, APPEND_LOCK_KEY)
    rows = await connection.fetch(_HIGHEST_REVISIONS, list({item[0][0] for item in items}))
    updates, records = number_above(items, {str(row[0]): int(row[1]) for row in rows})
    await connection.execute(
        _INSERT_UPDATES,
        [resource_id for resource_id, _, _ in updates],
        [revision for _, revision, _ in updates],
        [data for _, _, data in updates],
    )
    if records:
        if chain_records is None:
            raise ValueError("audit records given to a document store without an audit store")
        await chain_records(connection, records)
    return [revision for _, revision, _ in updates]


async def _compact(
    resource_id: str, revision: int, snapshot: bytes, connection: Connection
) -> None:
    await connection.execute(_COMPACT, resource_id, revision, snapshot)
