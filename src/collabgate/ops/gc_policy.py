"""Python's cyclic garbage collector: how long it stops the event loop, and how often.

CPython starts a young collection after every 700 net allocations of container objects. A
gateway relaying tens of thousands of frames a second reaches that dozens of times a second, and
each young collection promotes whatever happens to be in flight (a frame on its way, an update
waiting for its commit) to an older generation. Promoted objects are what trigger a full
collection, which walks every tracked object: with thousands of connections, 100-300 ms during
which no frame moves. Measured on /yjs at 1,500 clients: 30-40 young collections a second and a
200 ms full one every 3 s, which made the p99 latency.

The default policy (docs/performance.md has the figures):

* **A larger young generation** (``COLLABGATE_GC_YOUNG_THRESHOLD``, 50,000 instead of 700). A
  relay allocates and frees at the same pace, so its net allocations stay far below that: in a
  steady state nothing is collected at all, and nothing in flight gets promoted. Cyclic garbage
  (every closed connection leaves some) is still collected, by the next young collection.
* **The start-up heap frozen** (:func:`gc.freeze`) once the gateway runs: modules, classes and
  functions live as long as the process, so no collection needs to walk them again.

Every collection is timed into ``collabgate_gc_pause_seconds{generation}``; a pause over
``warn_seconds`` is logged as ``gc_pause``.

With ``freeze`` (``COLLABGATE_GC_FREEZE``, off by default) :class:`GcPolicy` also freezes what
survives each full collection, so the next one walks only what was promoted since. Frozen objects
are still freed by reference counting the moment they are unused, but garbage *cycles* among them
wait for :meth:`GcPolicy.collect_everything`, every ``full_interval`` seconds — and every closed
connection leaves such cycles (uvicorn's HTTP protocol and its parser, websockets' protocol and
its parser generator, the transport). Under constant reconnection memory then grows until the next
full collection, which pauses for longer.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
from typing import Any

import structlog
from prometheus_client import Histogram

log = structlog.get_logger(__name__)


class GcPolicy:
    """A ``gc.callbacks`` entry that times every collection, plus the collector's settings:
    the young generation's size, the start-up heap frozen, and with ``freeze`` the survivors."""

    def __init__(
        self,
        histogram: Histogram,
        *,
        warn_seconds: float,
        freeze: bool,
        full_interval: float,
        young_threshold: int = 700,
    ) -> None:
        self._by_generation = {g: histogram.labels(str(g)) for g in (0, 1, 2)}
        self._warn_seconds = warn_seconds
        self._freeze = freeze
        self.full_interval = full_interval
        self._young_threshold = young_threshold
        self._previous_thresholds: tuple[int, int, int] | None = None
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = int(info["generation"])
        self._by_generation[generation].observe(pause)
        if generation == 2 and self._freeze:
            gc.freeze()
        if pause > self._warn_seconds:
            # An empty context: the collector runs inside whatever connection's code allocated
            # last, whose bound log fields have nothing to do with the pause.
            contextvars.Context().run(
                log.warning,
                "gc_pause",
                generation=generation,
                pause_ms=round(pause * 1000, 1),
                collected=info["collected"],
                frozen=gc.get_freeze_count(),
            )

    def install(self) -> None:
        """Meter collections and size the young generation (undone by :meth:`remove`)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        if self._previous_thresholds is None:
            self._previous_thresholds = gc.get_threshold()
            gc.set_threshold(self._young_threshold, *self._previous_thresholds[1:])

    def freeze_startup_heap(self) -> None:
        """Collect once, then exempt everything alive (the start-up heap) from collections."""
        gc.collect()
        gc.freeze()

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
        if self._previous_thresholds is not None:
            gc.set_threshold(*self._previous_thresholds)
            self._previous_thresholds = None
        gc.unfreeze()

    def collect_everything(self) -> None:
        """Unfreeze and collect the whole heap: reclaims cycles among once-frozen objects."""
        gc.unfreeze()
        gc.collect()

    async def run(self) -> None:
        """With ``freeze``: :meth:`collect_everything` every ``full_interval`` seconds."""
        while True:
            await asyncio.sleep(self.full_interval)
            self.collect_everything()
