"""In-process sessions for a single instance."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Session:
    user_id: str
    instance_id: str
    expires_at: float


class MemorySessionStore:
    """:class:`~collabgate.sessions.port.SessionStore` in a dict; ``clock`` gives seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._by_user: dict[str, set[str]] = {}

    async def open(
        self, user_id: str, connection_id: str, instance_id: str, ttl_seconds: float
    ) -> int:
        self._forget(connection_id)
        now = self._clock()
        self._sessions[connection_id] = _Session(user_id, instance_id, now + ttl_seconds)
        self._by_user.setdefault(user_id, set()).add(connection_id)
        return self._live_count(user_id, now)

    async def touch(self, connection_id: str, ttl_seconds: float) -> bool:
        session = self._sessions.get(connection_id)
        now = self._clock()
        if session is None or session.expires_at <= now:
            return False
        session.expires_at = now + ttl_seconds
        return True

    async def close_connection(self, user_id: str, connection_id: str) -> None:
        session = self._sessions.get(connection_id)
        if session is not None and session.user_id == user_id:
            self._forget(connection_id)

    async def count(self, user_id: str) -> int:
        return self._live_count(user_id, self._clock())

    async def close(self) -> None:
        self._sessions.clear()
        self._by_user.clear()

    def _live_count(self, user_id: str, now: float) -> int:
        """Count the user's live sessions, dropping expired ones on the way."""
        connections = self._by_user.get(user_id, set())
        for connection_id in [c for c in connections if self._sessions[c].expires_at <= now]:
            self._forget(connection_id)
        return len(connections)

    def _forget(self, connection_id: str) -> None:
        session = self._sessions.pop(connection_id, None)
        if session is None:
            return
        connections = self._by_user.get(session.user_id)
        if connections is not None:
            connections.discard(connection_id)
            if not connections:
                del self._by_user[session.user_id]
