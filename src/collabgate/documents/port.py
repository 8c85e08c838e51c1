"""Document store port: Y.js documents as a compacted snapshot plus the updates since."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from collabgate.audit.chain import PreparedEvent, prepare_event
from collabgate.audit.port import AuditEvent


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What the store holds for one resource."""

    snapshot: bytes | None = None  # a Y.js update encoding the whole document at snapshot_revision
    snapshot_revision: int = 0
    updates: list[bytes] = field(default_factory=list)  # updates after the snapshot, in order
    #: The highest revision stored. Revisions may have gaps (a revision an append that failed
    #: was numbered with may stay unused), so this is not always snapshot_revision + len(updates).
    last_revision: int = 0

    @property
    def revision(self) -> int:
        return max(self.last_revision, self.snapshot_revision + len(self.updates))


#: Builds the audit record of an update from the revision the update is stored as.
UpdateRecord = Callable[[int], AuditEvent]


class DocumentStore(Protocol):
    async def load(self, resource_id: str) -> StoredDocument:
        """The stored document; an empty one when the resource has never been written."""
        ...

    def append(
        self, resource_id: str, revision: int, update: bytes, record: UpdateRecord | None = None
    ) -> asyncio.Future[int]:
        """Queue ``update`` to be stored after everything stored for the resource; the future
        gives the revision it is stored as, once durable. Appends are queued when called, so
        they are stored in the order of the calls; bad arguments raise at once.

        A future rather than a coroutine: the gateway queues one per edit and adds callbacks
        to it, so an edit on its way to the store needs no task (docs/performance.md).

        ``revision`` is the caller's number for it (its copy's next revision), and normally the
        one returned. Revisions only grow, and nothing is overwritten: when another writer has
        stored that number or a later one first (another instance editing the same resource),
        the update is stored under the next revision above everything stored. (A revision at
        or below a stored one could also slip under a compaction that loaded before it and be
        deleted unseen.)

        ``record(stored_revision)``, the audit event that describes the update, is stored in the
        same transaction: the update is durable with its record or not at all, so no crash can
        leave a stored edit that the audit trail does not show. A store without an audit trail
        refuses a record with ``ValueError`` rather than drop it.

        Concurrent calls are committed together (group commit): many appends share one fsync.
        """
        ...

    async def compact(self, resource_id: str, revision: int, snapshot: bytes) -> None:
        """Replace every update up to ``revision`` by ``snapshot``; later updates stay."""
        ...

    async def close(self) -> None:
        """Commit what is pending and release the store."""
        ...


#: One stored update: resource id, revision, update.
StoredUpdate = tuple[str, int, bytes]

#: An append as the database adapters queue it: the update, its audit record encoded for that
#: revision, and the record's builder, for when the update is stored under another revision.
QueuedAppend = tuple[StoredUpdate, PreparedEvent | None, UpdateRecord | None]


def check_revision(revision: int) -> None:
    if revision < 1:
        raise ValueError(f"revision must be at least 1 (got {revision})")


def queued_append(
    resource_id: str, revision: int, update: bytes, record: UpdateRecord | None, *, audited: bool
) -> QueuedAppend:
    """Check an append's arguments and encode its record on the caller's side (the database
    writer only hashes and inserts); ``audited``: the store has an audit store to chain it."""
    check_revision(revision)
    if record is not None and not audited:
        raise ValueError("this document store has no audit store to write the record to")
    prepared = prepare_event(record(revision)) if record is not None else None
    return (resource_id, revision, bytes(update)), prepared, record


def number_above(
    items: list[QueuedAppend], top: dict[str, int]
) -> tuple[list[StoredUpdate], list[PreparedEvent]]:
    """Number a batch of appends for storage: each above the highest revision stored of its
    resource (``top``, updated here) and above the appends before it in the batch.

    Returns the updates to insert, each under its own revision or the next free one, and the
    encoded audit records that go with them (re-encoded for an update numbered anew)."""
    updates: list[StoredUpdate] = []
    records: list[PreparedEvent] = []
    for (resource_id, revision, data), prepared, record in items:
        highest = top.get(resource_id, 0)
        if revision <= highest:
            revision = highest + 1
            prepared = prepare_event(record(revision)) if record is not None else None
        top[resource_id] = revision
        updates.append((resource_id, revision, data))
        if prepared is not None:
            records.append(prepared)
    return updates, records
