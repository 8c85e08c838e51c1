"""Loads, updates, persists and compacts the documents of the resources in use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

import structlog

from collabgate.documents.port import DocumentStore, UpdateRecord
from collabgate.documents.server_document import ServerDocument
from collabgate.ops.event_loop import pass_on, running_loop

log = structlog.get_logger(__name__)


class DocumentService:
    """One :class:`ServerDocument` per resource in use, backed by a :class:`DocumentStore`.

    ``persist``'s future is done once an update is durable; callers acknowledge only then. A
    document is compacted into a snapshot in the background once ``compaction_threshold`` updates
    pile up.
    """

    def __init__(
        self,
        store: DocumentStore,
        *,
        compaction_threshold: int,
        on_compaction_error: Callable[[BaseException], None] | None = None,
        on_revision_conflict: Callable[[], object] | None = None,
        shared_store: bool = False,
    ) -> None:
        self._store = store
        self._threshold = compaction_threshold
        self._documents: dict[str, ServerDocument] = {}
        self._loading: dict[str, asyncio.Future[ServerDocument]] = {}
        self._last_used: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._on_compaction_error = on_compaction_error
        self._on_revision_conflict = on_revision_conflict
        #: Other instances write the same store: joins and SYNCs re-read it (see :meth:`refresh`).
        self.shared_store = shared_store

    @property
    def loaded(self) -> int:
        return len(self._documents)

    def loaded_document(self, resource_id: str) -> ServerDocument | None:
        return self._documents.get(resource_id)

    async def get(self, resource_id: str) -> ServerDocument:
        """The document, loaded from the store once even when many ask at the same time."""
        self._last_used[resource_id] = time.monotonic()
        document = self._documents.get(resource_id)
        if document is not None:
            return document
        pending = self._loading.get(resource_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServerDocument] = asyncio.get_running_loop().create_future()
        self._loading[resource_id] = future
        try:
            stored = await self._store.load(resource_id)
            document = ServerDocument(resource_id, stored)
            self._documents[resource_id] = document
            future.set_result(document)
            return document
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._loading[resource_id]

    async def refresh(self, document: ServerDocument) -> bytes:
        """Merge what other instances stored into the loaded copy; return what that added, as
        one update (empty bytes with a store of this instance's own, which holds nothing new).

        Room events between instances can be lost (a broker restart); the store cannot. A client
        that joins or SYNCs then gets everything acknowledged anywhere, not only what reached this
        instance's memory.
        """
        if not self.shared_store:
            return b""
        before = document.state_vector()
        document.merge_stored(await self._store.load(document.resource_id))
        return document.missing_from(before)

    def apply(self, document: ServerDocument, update: bytes) -> int:
        """Apply ``update`` in memory and return its revision; :meth:`persist` makes it durable."""
        revision = document.apply(update)
        self._last_used[document.resource_id] = time.monotonic()
        return revision

    def persist(
        self,
        document: ServerDocument,
        revision: int,
        update: bytes,
        record: UpdateRecord | None = None,
    ) -> asyncio.Future[int]:
        """Queue ``update`` for storage; the future gives the revision it was stored as, once
        it is durable, or the store's error (a store that refuses the update at once included).

        Normally that is ``revision``. With several instances writing one resource, another
        instance may have stored that number first: the store then stores the update under the
        next free revision (nothing is overwritten), and this copy numbers on from there.
        ``record(stored_revision)`` is the audit event stored in the same transaction.
        """
        persisted: asyncio.Future[int] = running_loop().create_future()
        try:
            stored = self._store.append(document.resource_id, revision, update, record)
        except Exception as exc:
            persisted.set_exception(exc)
        else:
            stored.add_done_callback(partial(self._stored, document, revision, persisted))
        return persisted

    def _stored(
        self,
        document: ServerDocument,
        revision: int,
        persisted: asyncio.Future[int],
        done: asyncio.Future[int],
    ) -> None:
        """The document learns where ``done`` was stored, then ``persisted``'s waiters do."""
        if not done.cancelled() and done.exception() is None:
            self._note_stored(document, revision, done.result())
        pass_on(done, persisted)

    def _note_stored(self, document: ServerDocument, revision: int, stored: int) -> None:
        if stored != revision:
            document.revision = max(document.revision, stored)
            if self._on_revision_conflict is not None:
                self._on_revision_conflict()
        document.stored_revision = max(document.stored_revision, stored)
        if document.updates_since_snapshot >= self._threshold:
            self._compact_in_background(document)

    def _compact_in_background(self, document: ServerDocument) -> None:
        document.updates_since_snapshot = 0
        task = asyncio.get_running_loop().create_task(self._compact(document))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _compact(self, document: ServerDocument) -> None:
        """Fold the stored updates into one snapshot.

        With a shared store it is built from what is stored, not from the in-memory copy: with
        several instances, that copy may lack an update another instance stored (room events can
        be lost between instances), and compacting from it would delete that update for good.
        With a store of its own, this instance's copy holds every stored update, so the snapshot
        is taken from memory, with no load. It may hold updates still on their way to the store
        as well, which is harmless: they are stored after it under higher revisions, and Y.js
        applies an update it already has as a no-op.
        """
        resource_id = document.resource_id
        try:
            if self.shared_store:
                stored = await self._store.load(resource_id)
                if not stored.updates:
                    return
                snapshot = ServerDocument(resource_id, stored).full_state()
                revision = stored.revision
            else:
                snapshot, revision = document.full_state(), document.stored_revision
            await self._store.compact(resource_id, revision, snapshot)
        except Exception as exc:  # the update log still holds everything; retry next threshold
            log.warning("compaction_failed", resource_id=resource_id, error=str(exc))
            if self._on_compaction_error is not None:
                self._on_compaction_error(exc)

    def unload_idle(self, idle_seconds: float, in_use: Callable[[str], bool]) -> int:
        """Drop documents nobody has touched for ``idle_seconds`` and no connection has joined."""
        cutoff = time.monotonic() - idle_seconds
        idle = [
            rid
            for rid, used in self._last_used.items()
            if used < cutoff and not in_use(rid) and rid in self._documents
        ]
        for resource_id in idle:
            del self._documents[resource_id]
            del self._last_used[resource_id]
        return len(idle)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._store.close()
