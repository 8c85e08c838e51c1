"""One client connection's state: identity, joined resources, rate limit, pending close."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import deque
from dataclasses import dataclass

from collabgate.auth.principal import Principal
from collabgate.errors import PermissionDenied, ResourceNotJoined
from collabgate.session.outbox import Codec, Frame, Outbox


@dataclass(frozen=True, slots=True)
class CloseRequest:
    code: int
    reason: str


class TokenBucket:
    """``rate`` messages per second on average, ``burst`` at once."""

    __slots__ = ("_capacity", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def take(self, now: float) -> bool:
        elapsed = now - self._updated
        self._updated = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Connection:
    """State of one socket, independent of how its bytes travel."""

    __slots__ = (
        "_storing",
        "awareness_clock",
        "awareness_id",
        "close_request",
        "codec",
        "id",
        "joined",
        "last_seen",
        "opened_at",
        "outbox",
        "principal",
        "rate",
    )

    def __init__(
        self,
        connection_id: str,
        principal: Principal,
        outbox: Outbox,
        rate: TokenBucket,
        codec: Codec = "json",
    ) -> None:
        self.id = connection_id
        #: ``json`` (``/ws``: text frames) or ``yjs`` (``/yjs``: y-websocket binary frames).
        self.codec: Codec = codec
        self.principal = principal
        self.outbox = outbox
        self.rate = rate
        self.joined: dict[str, str] = {}  # resource id → mode
        self.opened_at = time.monotonic()
        self.last_seen = self.opened_at
        self.close_request: CloseRequest | None = None
        #: The awareness client id this connection speaks for: the first one a ``/yjs`` peer
        #: announces, or one derived from the connection id for a ``/ws`` peer (whose AWARENESS
        #: frames reach ``/yjs`` peers as that client); ``awareness_clock`` counts the latter.
        self.awareness_id: int | None = (
            zlib.crc32(connection_id.encode()) if codec == "json" else None
        )
        self.awareness_clock = 0
        #: Updates on their way to the store, oldest first (the socket is read on meanwhile).
        #: Each one's store completes after the one before it, so the done ones lead.
        self._storing: deque[asyncio.Future[int]] = deque()

    def unstored(self) -> deque[asyncio.Future[int]]:
        """This connection's updates not yet stored, oldest first; append each new one."""
        storing = self._storing
        while storing and storing[0].done():
            storing.popleft()
        return storing

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    @property
    def resource_id(self) -> str:
        """The one resource of a ``/yjs`` connection (joined when it opened)."""
        for resource_id in self.joined:
            return resource_id
        raise ResourceNotJoined("this connection has left its resource")

    def send(self, frame: Frame) -> bool:
        return self.outbox.push(frame)

    def request_close(self, code: int, reason: str) -> None:
        """Ask the transport to close once what is queued has been written."""
        if self.close_request is None:
            self.close_request = CloseRequest(code, reason)
        self.outbox.close()

    def mode_in(self, resource_id: str) -> str:
        mode = self.joined.get(resource_id)
        if mode is None:
            raise ResourceNotJoined(f"join {resource_id} before sending messages about it")
        return mode

    def require_editor(self, resource_id: str) -> None:
        if self.mode_in(resource_id) != "editor":
            raise PermissionDenied(
                f"{resource_id} was joined as viewer: edits and locks are refused"
            )
