"""In-process presence for a single instance."""

from __future__ import annotations

from collabgate.presence.port import Member


class MemoryPresenceStore:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Member]] = {}

    async def add(self, resource_id: str, member: Member) -> bool:
        room = self._rooms.setdefault(resource_id, {})
        first = all(m.user_id != member.user_id for m in room.values())
        room[member.connection_id] = member
        return first

    async def remove(self, resource_id: str, connection_id: str) -> tuple[Member | None, bool]:
        room = self._rooms.get(resource_id)
        if room is None or connection_id not in room:
            return None, False
        member = room.pop(connection_id)
        if not room:
            del self._rooms[resource_id]
        last = all(m.user_id != member.user_id for m in room.values())
        return member, last

    async def members(self, resource_id: str) -> list[Member]:
        by_user: dict[str, Member] = {}
        for member in sorted(self._rooms.get(resource_id, {}).values(), key=lambda m: m.joined_at):
            by_user.setdefault(member.user_id, member)
        return list(by_user.values())

    async def user_count(self, resource_id: str) -> int:
        return len({m.user_id for m in self._rooms.get(resource_id, {}).values()})

    @property
    def heartbeat_interval_seconds(self) -> float:
        return 3600.0  # one process: nothing to tell anyone

    async def heartbeat(self) -> bool:
        return True

    async def reap_dead_instances(self) -> list[tuple[str, Member, bool]]:
        return []

    async def close(self) -> None:
        self._rooms.clear()
