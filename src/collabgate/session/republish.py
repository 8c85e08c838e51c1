"""Edits whose publish to the other instances failed, published again once the bus is back.

Without this, an edit published while RabbitMQ was away (a broker restart, a failover) never
reached the other instances' clients: Y.js holds every later edit of the same client that builds
on it as pending, so those clients stopped seeing that user's typing until they reconnected or
sent a SYNC. The edit itself is safe (stored and acknowledged without the bus); only its relay
is missing.

:class:`Republisher` keeps those events, oldest first and at most ``max_events`` of them, and
one task publishes them again in order: at once, then every ``retry_seconds`` while the bus still
refuses. Y.js updates are idempotent and commute, so one that arrives late or twice changes
nothing it should not. Only updates are kept: a presence or lock event published late would show
a state that has since changed. A publish whose confirm came late
(:class:`~collabgate.bus.port.PublishUnconfirmed`) is not kept: it was sent, and usually
delivered; publishing it again would add load to a broker that is already behind (measured,
docs/performance.md). A receiver that never got it reads it from the store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import Counter

from collabgate.bus.port import PublishUnconfirmed, RoomEvent

log = structlog.get_logger(__name__)


class Republisher:
    """Publishes again the update events whose publish failed."""

    def __init__(
        self,
        publish: Callable[[RoomEvent], Awaitable[None]],
        *,
        unavailable: tuple[type[BaseException], ...],
        max_events: int,
        retry_seconds: float,
        outcomes: Counter,
    ) -> None:
        self._publish = publish
        self._unavailable = unavailable
        #: Oldest first; a full deque drops its oldest as a new one comes (maxlen 0 keeps none).
        self._waiting: deque[RoomEvent] = deque(maxlen=max_events)
        self._retry_seconds = retry_seconds
        self._sent = outcomes.labels("sent")
        self._dropped = outcomes.labels("dropped")
        self._task: asyncio.Task[None] | None = None
        #: Events given up because ``max_events`` were already waiting.
        self.dropped = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def failed(self, event: RoomEvent) -> None:
        """Keep ``event`` (an update whose publish failed) for the next try."""
        if event.update is None:
            return
        if len(self._waiting) == self._waiting.maxlen:
            self._dropped.inc()
            self.dropped += 1
            if self.dropped % 1000 == 1:  # the first, then one line per thousand
                log.warning("bus_republish_dropped", dropped=self.dropped, kept=len(self._waiting))
        self._waiting.append(event)
        if self._waiting and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._publish_waiting())

    async def _publish_waiting(self) -> None:
        sent = 0
        while self._waiting:
            event = self._waiting[0]
            try:
                await self._publish(event)
            except PublishUnconfirmed:
                pass  # sent: see the module's docstring
            except self._unavailable:
                await asyncio.sleep(self._retry_seconds)
                continue
            if self._waiting and self._waiting[0] is event:  # not dropped meanwhile
                self._waiting.popleft()
            self._sent.inc()
            sent += 1
        log.info("bus_republished", events=sent)

    async def wait_idle(self) -> None:
        """Until nothing waits to be published again (tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
