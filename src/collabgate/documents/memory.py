"""Documents kept in process memory: for tests of the core and throwaway demos, not durable."""

from __future__ import annotations

import asyncio

from collabgate.audit.port import AuditSink
from collabgate.documents.port import StoredDocument, UpdateRecord, check_revision
from collabgate.ops.event_loop import running_loop


class MemoryDocumentStore:
    """Nothing here survives the process, so an append's audit record goes to ``audit`` once
    the update is stored; without it, an append with a record is refused."""

    def __init__(self, audit: AuditSink | None = None) -> None:
        self._documents: dict[str, StoredDocument] = {}
        self._audit = audit

    async def load(self, resource_id: str) -> StoredDocument:
        stored = self._documents.get(resource_id, StoredDocument())
        return StoredDocument(
            stored.snapshot, stored.snapshot_revision, list(stored.updates), stored.last_revision
        )

    def append(
        self, resource_id: str, revision: int, update: bytes, record: UpdateRecord | None = None
    ) -> asyncio.Future[int]:
        stored: asyncio.Future[int] = running_loop().create_future()
        stored.set_result(self._store(resource_id, revision, update, record))
        return stored

    def _store(
        self, resource_id: str, revision: int, update: bytes, record: UpdateRecord | None
    ) -> int:
        check_revision(revision)
        if record is not None and self._audit is None:
            raise ValueError("this document store has no audit sink to write the record to")
        stored = self._documents.get(resource_id, StoredDocument())
        revision = max(revision, stored.revision + 1)
        self._documents[resource_id] = StoredDocument(
            stored.snapshot, stored.snapshot_revision, [*stored.updates, update], revision
        )
        if record is not None and self._audit is not None:
            self._audit.record(record(revision))
        return revision

    async def compact(self, resource_id: str, revision: int, snapshot: bytes) -> None:
        stored = self._documents.get(resource_id, StoredDocument())
        covered = revision - stored.snapshot_revision
        later = stored.updates[covered:] if covered <= len(stored.updates) else []
        self._documents[resource_id] = StoredDocument(
            snapshot, revision, later, max(revision, stored.last_revision)
        )

    async def close(self) -> None:
        return None
