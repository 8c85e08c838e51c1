"""Audit port: an append-only, hash-chained trail of who did what, never document content."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class AuditEventType(StrEnum):
    USER_CONNECTED = "USER_CONNECTED"
    CONNECTION_REJECTED = "CONNECTION_REJECTED"
    USER_DISCONNECTED = "USER_DISCONNECTED"
    RESOURCE_JOINED = "RESOURCE_JOINED"
    RESOURCE_LEFT = "RESOURCE_LEFT"
    DOCUMENT_UPDATED = "DOCUMENT_UPDATED"
    LOCK_ACQUIRED = "LOCK_ACQUIRED"
    LOCK_DENIED = "LOCK_DENIED"
    LOCK_RELEASED = "LOCK_RELEASED"
    LOCK_EXPIRED = "LOCK_EXPIRED"
    PERMISSION_DENIED = "PERMISSION_DENIED"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event_type: AuditEventType
    occurred_at: int  # epoch milliseconds
    instance_id: str
    user_id: str | None = None
    resource_id: str | None = None
    connection_id: str | None = None
    details: dict[str, Any] = field(
        default_factory=dict
    )  # metadata only: sizes, revisions, reasons


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored event with its place in the chain."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


class AuditStore(Protocol):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        """Chain and store ``events`` in order, durably, in one transaction."""
        ...

    async def records(self, after_seq: int = 0, limit: int = 10_000) -> list[AuditRecord]:
        """Stored records with ``seq > after_seq``, in chain order."""
        ...

    async def head(self) -> tuple[int, str]:
        """The last (seq, hash) the store has written, as it recorded them at write time."""
        ...

    async def close(self) -> None: ...


class AuditSink(Protocol):
    """Where the gateway hands events: must not block and must not lose them."""

    def record(self, event: AuditEvent) -> None: ...
