"""Per-resource client state: the local pycrdt document and the updates not yet acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc

from collabgate.client.models import Frame, b64decode


class PendingUpdate:
    """One update sent (or to be sent) with ``Y_UPDATE`` and not acknowledged yet.

    ``future`` resolves to the ``Y_UPDATE_ACK`` revision, or fails with the ``ProtocolError`` the
    server refused the update with, or with ``ConnectionLost`` when the client closes for good.
    ``sent_on`` is the generation of the connection it was last sent on (``-1``: not sent yet).
    """

    __slots__ = ("future", "sent_on", "update")

    def __init__(self, update: bytes, future: asyncio.Future[int]) -> None:
        self.update = update
        self.future = future
        self.sent_on = -1


class JoinedResource:
    """What the client keeps for one resource it joined."""

    __slots__ = (
        "doc",
        "joined",
        "live_on",
        "mode",
        "resource_id",
        "resource_type",
        "revision",
        "unacked",
    )

    def __init__(self, resource_id: str, mode: str, resource_type: str | None) -> None:
        self.resource_id = resource_id
        self.mode = mode
        self.resource_type = resource_type
        self.doc: Doc[Any] = Doc()
        #: The latest revision seen in RESOURCE_STATE, SYNC_REPLY, Y_UPDATE or Y_UPDATE_ACK.
        self.revision = 0
        #: False until the first RESOURCE_STATE arrived (a join in flight is not re-joined).
        self.joined = False
        #: Generation of the connection on which the resource is joined and its backlog sent;
        #: new updates are sent at once only while this equals the current generation.
        self.live_on = -1
        self.unacked: list[PendingUpdate] = []

    def apply(self, update: bytes) -> bool:
        """Apply a Y.js update to the local document; False if the bytes are not one."""
        try:
            self.doc.apply_update(update)
        except ValueError:
            return False
        return True

    def see_revision(self, revision: Any) -> None:
        if isinstance(revision, int) and revision > self.revision:
            self.revision = revision

    def apply_state(self, frame: Frame) -> None:
        """Merge a RESOURCE_STATE or SYNC_REPLY frame into the local document."""
        data = frame.get("state") if frame.get("type") == "RESOURCE_STATE" else frame.get("update")
        if isinstance(data, str) and data:
            self.apply(b64decode(data))
        revision = frame.get("revision")
        if isinstance(revision, int):
            # A rejoin may land on a server whose count differs; trust the reply.
            self.revision = revision
