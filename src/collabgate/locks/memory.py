"""In-process lock table for a single instance."""

from __future__ import annotations

import heapq
import uuid

from collabgate.locks.port import Denied, Lock, conflicts


class MemoryLockStore:
    def __init__(self) -> None:
        self._locks: dict[str, dict[str, Lock]] = {}
        self._fencing: dict[tuple[str, str], int] = {}
        self._expiry_heap: list[tuple[int, str, str, str]] = []

    async def acquire(
        self, resource_id: str, target: str, user_id: str, ttl_ms: int, now_ms: int
    ) -> Lock | Denied:
        held = self._live(resource_id, now_ms)
        for lock in held.values():
            if lock.holder_user_id != user_id and conflicts(lock.target, target):
                return Denied(lock)
        current = held.get(target)
        if current is not None:
            return self._store(_replace_expiry(current, now_ms + ttl_ms))
        key = (resource_id, target)
        self._fencing[key] = self._fencing.get(key, 0) + 1
        lock = Lock(
            resource_id=resource_id,
            target=target,
            holder_user_id=user_id,
            lock_id=uuid.uuid4().hex,
            fencing_token=self._fencing[key],
            expires_at=now_ms + ttl_ms,
        )
        return self._store(lock)

    async def extend(
        self, resource_id: str, target: str, user_id: str, ttl_ms: int, now_ms: int
    ) -> Lock | None:
        lock = self._live(resource_id, now_ms).get(target)
        if lock is None or lock.holder_user_id != user_id:
            return None
        return self._store(_replace_expiry(lock, now_ms + ttl_ms))

    async def release(
        self, resource_id: str, target: str, user_id: str, now_ms: int
    ) -> Lock | None:
        lock = self._live(resource_id, now_ms).get(target)
        if lock is None or lock.holder_user_id != user_id:
            return None
        self._drop(lock)
        return lock

    async def locks(self, resource_id: str, now_ms: int) -> list[Lock]:
        return list(self._live(resource_id, now_ms).values())

    async def held_by(self, user_id: str, now_ms: int) -> list[Lock]:
        return [
            lock
            for room in self._locks.values()
            for lock in room.values()
            if lock.holder_user_id == user_id and lock.expires_at > now_ms
        ]

    async def pop_expired(self, now_ms: int) -> list[Lock]:
        expired = []
        while self._expiry_heap and self._expiry_heap[0][0] <= now_ms:
            _, resource_id, target, lock_id = heapq.heappop(self._expiry_heap)
            lock = self._locks.get(resource_id, {}).get(target)
            # The heap keeps stale entries for extended or released locks; skip those.
            if lock is not None and lock.lock_id == lock_id and lock.expires_at <= now_ms:
                self._drop(lock)
                expired.append(lock)
        return expired

    async def close(self) -> None:
        self._locks.clear()
        self._expiry_heap.clear()

    def _live(self, resource_id: str, now_ms: int) -> dict[str, Lock]:
        room = self._locks.get(resource_id)
        if not room:  # most rooms, most of the time: every edit asks (the gateway's lock check)
            return {}
        return {target: lock for target, lock in room.items() if lock.expires_at > now_ms}

    def _store(self, lock: Lock) -> Lock:
        self._locks.setdefault(lock.resource_id, {})[lock.target] = lock
        heapq.heappush(
            self._expiry_heap, (lock.expires_at, lock.resource_id, lock.target, lock.lock_id)
        )
        return lock

    def _drop(self, lock: Lock) -> None:
        room = self._locks.get(lock.resource_id, {})
        room.pop(lock.target, None)
        if not room:
            self._locks.pop(lock.resource_id, None)


def _replace_expiry(lock: Lock, expires_at: int) -> Lock:
    return Lock(
        resource_id=lock.resource_id,
        target=lock.target,
        holder_user_id=lock.holder_user_id,
        lock_id=lock.lock_id,
        fencing_token=lock.fencing_token,
        expires_at=expires_at,
    )
