"""Presence port: who is on which resource, across every instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Member:
    """One connection's membership of one resource."""

    connection_id: str
    user_id: str
    role: str
    mode: str
    joined_at: int  # epoch milliseconds
    name: str | None = None

    def to_wire(self) -> dict[str, Any]:
        user: dict[str, Any] = {
            "userId": self.user_id,
            "role": self.role,
            "mode": self.mode,
            "joinedAt": self.joined_at,
        }
        if self.name is not None:
            user["name"] = self.name
        return user


class PresenceStore(Protocol):
    """Memberships of resources. A user with several connections is one user to the others."""

    async def add(self, resource_id: str, member: Member) -> bool:
        """Record ``member``; return True when this is the user's first connection there."""
        ...

    async def remove(self, resource_id: str, connection_id: str) -> tuple[Member | None, bool]:
        """Forget a connection; return it and whether it was the user's last one there."""
        ...

    async def members(self, resource_id: str) -> list[Member]:
        """One entry per user (their earliest connection), oldest first."""
        ...

    async def user_count(self, resource_id: str) -> int: ...

    @property
    def heartbeat_interval_seconds(self) -> float:
        """How often :meth:`heartbeat` should run."""
        ...

    async def heartbeat(self) -> bool:
        """Tell other instances this one is alive; False when its liveness had lapsed, so its
        memberships may have been reaped and must be added again."""
        ...

    async def reap_dead_instances(self) -> list[tuple[str, Member, bool]]:
        """Remove memberships of instances that died: ``(resource_id, member, last_for_user)``,
        each reported to exactly one caller."""
        ...

    async def close(self) -> None: ...
