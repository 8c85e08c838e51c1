"""Room bus port: room events travel between gateway instances.

An instance delivers its own events to its local connections directly and publishes them on the
bus for every other instance. Delivery may duplicate or drop; Y.js updates are idempotent, an
update whose publish failed is published again once the bus is back
(:mod:`collabgate.session.republish`), and a state-vector SYNC closes any gap left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RoomEvent:
    resource_id: str
    origin_instance: str
    frame: str  # the encoded frame, sent as is to the room's local connections
    update: bytes | None = None  # for Y_UPDATE: applied to the receiving instance's document
    exclude_connection: str | None = None  # the sender, who must not get its own event back
    #: The y-websocket (``/yjs``) form of the event when it cannot be derived from the others:
    #: awareness. A Y_UPDATE's is built from ``update``; an event without one has ``None``.
    #: ``frame`` is ``""`` when the event has no JSON form (an awareness renewal for /yjs peers).
    yjs_frame: bytes | None = None


RoomEventHandler = Callable[[RoomEvent], Awaitable[None]]


class PublishUnconfirmed(ConnectionError):
    """The broker did not confirm a publish in time: the event may still reach the other
    instances (usually it does, late), so it is not published again; a receiver that lacks it
    reads it from the store (``Gateway._repair_gap``)."""


class RoomBus(Protocol):
    async def start(self, instance_id: str, handler: RoomEventHandler) -> None:
        """Begin delivering other instances' events to ``handler``."""
        ...

    @property
    def reaches_other_instances(self) -> bool:
        """Whether a published event may reach anyone: False lets a lone instance skip both
        the publish and the encoding of what only other instances would read."""
        ...

    async def publish(self, event: RoomEvent) -> None: ...

    async def close(self) -> None: ...
