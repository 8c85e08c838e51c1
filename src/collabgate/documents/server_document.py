"""The server's copy of one resource's Y.js document."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, get_update

from collabgate.documents.port import StoredDocument
from collabgate.errors import InvalidPayload


class ServerDocument:
    """A pycrdt document with a revision counter.

    Whole updates are applied in one call into yrs; nothing here drives the CRDT operation by
    operation from Python, and no observers are registered (pycrdt 0.14 leaks around observers).
    """

    __slots__ = ("_doc", "resource_id", "revision", "stored_revision", "updates_since_snapshot")

    def __init__(self, resource_id: str, stored: StoredDocument) -> None:
        self.resource_id = resource_id
        self._doc: Doc[Any] = Doc()
        if stored.snapshot is not None:
            self._doc.apply_update(stored.snapshot)
        for update in stored.updates:
            self._doc.apply_update(update)
        self.revision = stored.revision
        #: The highest revision known to be durable (``revision`` counts applied ones too).
        self.stored_revision = stored.revision
        self.updates_since_snapshot = len(stored.updates)

    def apply(self, update: bytes) -> int:
        """Apply a Y.js v1 update; return the new revision. Bad bytes raise ``InvalidPayload``."""
        try:
            self._doc.apply_update(update)
        except ValueError as exc:
            raise InvalidPayload(f"update is not a valid Y.js update: {exc}") from None
        self.revision += 1
        self.updates_since_snapshot += 1
        return self.revision

    def apply_remote(self, update: bytes) -> None:
        """Apply an update another instance already validated and stored."""
        try:
            self._doc.apply_update(update)
        except ValueError:
            return

    def merge_stored(self, stored: StoredDocument) -> None:
        """Fold in what the store holds (idempotent): closes gaps left by lost room events."""
        if stored.snapshot is not None:
            self.apply_remote(stored.snapshot)
        for update in stored.updates:
            self.apply_remote(update)
        self.revision = max(self.revision, stored.revision)
        self.stored_revision = max(self.stored_revision, stored.revision)

    def lacks_part_of(self, update: bytes) -> bool:
        """Whether an edit in ``update`` (applied already) is not in the document: it builds on
        an edit that never arrived here, and Y.js keeps it pending until that one does."""
        return inserts_anything(get_update(update, self._doc.get_state()))

    def full_state(self) -> bytes:
        return self._doc.get_update()

    def missing_from(self, state_vector: bytes) -> bytes:
        """The update a client with ``state_vector`` lacks."""
        try:
            return self._doc.get_update(state_vector)
        except ValueError as exc:
            raise InvalidPayload(f"stateVector is not a valid Y.js state vector: {exc}") from None

    def state_vector(self) -> bytes:
        return self._doc.get_state()


def inserts_anything(update: bytes) -> bool:
    """Whether a Y.js v1 update holds any inserted content, not only deletions: it starts with
    the number of clients whose new items it carries (a var-uint, one 0 byte for none)."""
    return update[:1] not in (b"", b"\x00")
