"""Python's cyclic garbage collector: how long it stops the event loop, and an opt-in policy.

A full (generation 2) collection walks every tracked object. With thousands of connections that
is a few million objects and 100-300 ms during which no frame moves; CPython starts one whenever
the objects promoted since the last one pass a quarter of the old ones, i.e. every few seconds
while connections arrive. Every collection is timed into ``collabgate_gc_pause_seconds
{generation}``; a pause over ``warn_seconds`` is logged as ``gc_pause``.

With ``freeze`` (``COLLABGATE_GC_FREEZE``, off by default) :class:`GcPolicy` freezes
(:func:`gc.freeze`) what survives each full collection, so the next one walks only what was
promoted since. Frozen objects are still freed by reference counting the moment they are unused,
but garbage *cycles* among them wait for :meth:`GcPolicy.collect_everything`, every
``full_interval`` seconds — and every closed connection leaves such cycles (uvicorn's HTTP
protocol and its parser, websockets' protocol and its parser generator, the transport). Measured
in docs/performance.md: /yjs p99 at 1,500 clients 143 → 17.5 ms, but under constant reconnection
memory grows until the next full collection, which then pauses for longer.
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
