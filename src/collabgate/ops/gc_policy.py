"""Python's cyclic garbage collector, kept from stopping the event loop for long.

A full (generation 2) collection walks every tracked object. With thousands of connections that
is a few million objects and 100-300 ms during which no frame moves; under steady traffic CPython
starts one whenever the objects promoted since the last one pass a quarter of the old ones, i.e.
every few seconds. Those pauses, not the average cost of a message, set the gateway's p99
(docs/performance.md: /yjs at 1,500 clients, p99 143 ms with them, 12 ms without).

:class:`GcPolicy` therefore freezes (:func:`gc.freeze`) what survives each full collection, so the
next one walks only what was promoted since. Frozen objects are still freed by reference counting
the moment they are unused; only garbage *cycles* among them wait, until the periodic
:meth:`GcPolicy.collect_everything` unfreezes and collects the whole heap (one long pause per
``full_interval`` seconds instead of one every few seconds). Every collection is timed into
``collabgate_gc_pause_seconds{generation}``; a pause over ``warn_seconds`` is logged.
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
    """A ``gc.callbacks`` entry: times every collection and, with ``freeze``, freezes survivors."""

    def __init__(
        self, histogram: Histogram, *, warn_seconds: float, freeze: bool, full_interval: float
    ) -> None:
        self._by_generation = {g: histogram.labels(str(g)) for g in (0, 1, 2)}
        self._warn_seconds = warn_seconds
        self._freeze = freeze
        self.full_interval = full_interval
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
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
        if self._freeze:
            gc.unfreeze()

    def collect_everything(self) -> None:
        """Unfreeze and collect the whole heap: reclaims cycles among once-frozen objects."""
        gc.unfreeze()
        gc.collect()

    async def run(self) -> None:
        """With ``freeze``: :meth:`collect_everything` every ``full_interval`` seconds."""
        if not self._freeze:
            return
        while True:
            await asyncio.sleep(self.full_interval)
            self.collect_everything()
