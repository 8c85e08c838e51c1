"""Lock port: exclusive edit locks on a resource or on one target inside it.

A lock is held by a user, not a socket. Target ``*`` is the whole resource: it conflicts with every
other target of the same resource held by someone else, and they with it. ``fencing_token`` grows
with every grant of the same (resource, target), across releases and restarts of the store, so a
stale holder's writes can be refused downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

WHOLE_RESOURCE = "*"


@dataclass(frozen=True, slots=True)
class Lock:
    resource_id: str
    target: str
    holder_user_id: str
    lock_id: str
    fencing_token: int
    expires_at: int  # epoch milliseconds

    def to_wire(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "holder": {"userId": self.holder_user_id},
            "expiresAt": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class Denied:
    """An acquire refused because ``held_by`` conflicts with it."""

    held_by: Lock


def conflicts(held_target: str, wanted_target: str) -> bool:
    return WHOLE_RESOURCE in (held_target, wanted_target) or held_target == wanted_target


class LockStore(Protocol):
    async def acquire(
        self, resource_id: str, target: str, user_id: str, ttl_ms: int, now_ms: int
    ) -> Lock | Denied:
        """Grant the lock, or refresh it when ``user_id`` already holds it; never queue."""
        ...

    async def extend(
        self, resource_id: str, target: str, user_id: str, ttl_ms: int, now_ms: int
    ) -> Lock | None:
        """Push the expiry of a lock ``user_id`` holds; None when they hold none."""
        ...

    async def release(
        self, resource_id: str, target: str, user_id: str, now_ms: int
    ) -> Lock | None:
        """Release a lock ``user_id`` holds; None when they hold none."""
        ...

    async def locks(self, resource_id: str, now_ms: int) -> list[Lock]:
        """Live locks of a resource."""
        ...

    async def held_by(self, user_id: str, now_ms: int) -> list[Lock]:
        """Live locks a user holds on any resource."""
        ...

    async def pop_expired(self, now_ms: int) -> list[Lock]:
        """Remove and return the locks whose expiry has passed, each exactly once."""
        ...

    async def close(self) -> None: ...
