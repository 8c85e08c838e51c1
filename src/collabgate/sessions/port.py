"""Session port: the open connections of each user, counted across every instance.

Why: the per-user connection cap (``MAX_CONNECTIONS_PER_USER``) must hold when a user's tabs land
on different instances behind the load balancer. Each instance registers its connections here and
refreshes them while they live; a connection whose instance dies stops being refreshed and stops
counting after its TTL, so no cleanup is needed when an instance crashes.

Usage for the cap: ``n = await open(...)``; if ``n`` exceeds the cap, ``close_connection`` it and
refuse the connection. ``open`` counts atomically, so two racing connections cannot both slip under
the cap (the later one sees the earlier one).
"""

from __future__ import annotations

from typing import Protocol


class SessionStore(Protocol):
    async def open(
        self, user_id: str, connection_id: str, instance_id: str, ttl_seconds: float
    ) -> int:
        """Register a connection live for ``ttl_seconds``; return the user's live count after it."""
        ...

    async def touch(self, connection_id: str, ttl_seconds: float) -> bool:
        """Keep a live connection for another ``ttl_seconds``.

        False when it is unknown, closed or already expired: expired means gone, so the caller
        should :meth:`open` it again if the socket is in fact still there.
        """
        ...

    async def close_connection(self, user_id: str, connection_id: str) -> None:
        """Forget a connection at once (socket closed)."""
        ...

    async def count(self, user_id: str) -> int:
        """Live connections of ``user_id`` on every instance."""
        ...

    async def close(self) -> None:
        """Release the store (not the sessions of other instances)."""
        ...
