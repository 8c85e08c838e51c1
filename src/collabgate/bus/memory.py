"""In-process bus: connects the gateway instances that live in one process (tests, embedded)."""

from __future__ import annotations

import structlog

from collabgate.bus.port import RoomEvent, RoomEventHandler

log = structlog.get_logger(__name__)


class InProcessHub:
    """Shared by the instances of one process; each gets an :class:`InProcessBus` on it."""

    def __init__(self) -> None:
        self.handlers: dict[str, RoomEventHandler] = {}


class InProcessBus:
    def __init__(self, hub: InProcessHub | None = None) -> None:
        self._hub = hub or InProcessHub()
        self._instance_id: str | None = None

    async def start(self, instance_id: str, handler: RoomEventHandler) -> None:
        self._instance_id = instance_id
        self._hub.handlers[instance_id] = handler

    @property
    def reaches_other_instances(self) -> bool:
        # Asked on every edit: a count, not a scan of the instances.
        handlers = self._hub.handlers
        return len(handlers) > (self._instance_id in handlers)

    async def publish(self, event: RoomEvent) -> None:
        for instance_id, handler in list(self._hub.handlers.items()):
            if instance_id == event.origin_instance:
                continue
            try:
                await handler(event)
            except Exception:  # one instance's failure must not reach the publisher or the others
                log.exception("bus_handler_failed", instance=instance_id)

    async def close(self) -> None:
        if self._instance_id is not None:
            self._hub.handlers.pop(self._instance_id, None)
