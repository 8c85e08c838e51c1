"""Document store port: Y.js documents as a compacted snapshot plus the updates since."""

from __future__ import annotations

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
    #: The highest revision stored. Revisions may have gaps (an append that failed is not
    #: retried under the same number), so this is not always snapshot_revision + len(updates).
    last_revision: int = 0

    @property
    def revision(self) -> int:
        return max(self.last_revision, self.snapshot_revision + len(self.updates))


class DuplicateRevisionError(ValueError):
    """An update with this revision is already stored (or compacted); nothing was overwritten.

    Part of the port: every adapter refuses a duplicate with this error and message.
    """

    def __init__(self, resource_id: str, revision: int) -> None:
        super().__init__(f"revision {revision} of {resource_id} is already stored")
        self.resource_id = resource_id
        self.revision = revision


class DocumentStore(Protocol):
    async def load(self, resource_id: str) -> StoredDocument:
        """The stored document; an empty one when the resource has never been written."""
        ...

    async def last_revision(self, resource_id: str) -> int:
        """The highest revision stored for the resource (0 when never written): what
        :meth:`load` would report as ``revision``, without reading the document."""
        ...

    async def append(
        self, resource_id: str, revision: int, update: bytes, record: AuditEvent | None = None
    ) -> None:
        """Store ``update`` as ``revision``. Durable when the call returns.

        ``record``, the audit event that describes the update, is stored in the same
        transaction: the update is durable with its record or not at all, so no crash can leave
        a stored edit that the audit trail does not show. A store without an audit trail
        refuses a record with ``ValueError`` rather than drop it.

        Revisions only grow: a revision at or below one already stored (or compacted) is refused
        with :class:`DuplicateRevisionError`, and nothing is overwritten.

        Concurrent calls are committed together (group commit): many appends share one fsync.
        """
        ...

    async def compact(self, resource_id: str, revision: int, snapshot: bytes) -> None:
        """Replace every update up to ``revision`` by ``snapshot``; later updates stay."""
        ...

    async def close(self) -> None:
        """Commit what is pending and release the store."""
        ...


#: An append as the database adapters queue it: (resource id, revision, update), and the audit
#: record to chain with it, encoded.
QueuedAppend = tuple[tuple[str, int, bytes], PreparedEvent | None]


def queued_append(
    resource_id: str, revision: int, update: bytes, record: AuditEvent | None, *, audited: bool
) -> QueuedAppend:
    """Check an append's arguments and encode its record on the caller's side (the database
    writer only hashes and inserts); ``audited``: the store has an audit store to chain it."""
    if revision < 1:
        raise ValueError(f"revision must be at least 1 (got {revision})")
    if record is not None and not audited:
        raise ValueError("this document store has no audit store to write the record to")
    return (resource_id, revision, bytes(update)), (
        prepare_event(record) if record is not None else None
    )
