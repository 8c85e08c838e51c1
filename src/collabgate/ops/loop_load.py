"""How busy the event loop is: the signal to add an instance before clinicians notice.

A gateway process does its relaying on one thread, its event loop, and one thread cannot use
more than one CPU. Latency stays flat while that thread has time to spare and rises steeply
as it nears a full CPU: on bench/yjs_relay the p99 delivery was 20 ms with the loop busy 68 %
of the time and 127 ms at 84 % (docs/performance.md). Process CPU does not show this: it adds
the SQLite writer thread and every other thread, and on a host or task with several CPUs it is
a fraction of all of them. Two metrics do:

* ``collabgate_event_loop_cpu_seconds_total`` (:class:`LoopCpu`): the CPU time of the event
  loop's thread alone, read from the kernel when ``/metrics`` is scraped. Its ``rate()`` is the
  share of one CPU the loop used; the alert ``CollabgateEventLoopSaturated`` fires when it stays
  above 0.8.
* ``collabgate_event_loop_lag_seconds`` (:class:`LagProbe`): how late a timer fires, once every
  ``interval``. That is what a frame arriving at that moment waited before the loop could start
  on it, whatever held the loop: a long callback, a garbage collection, or no free CPU.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["LagProbe", "LoopCpu"]

CPU_NAME = "collabgate_event_loop_cpu_seconds"
CPU_HELP = "CPU time of the event loop's thread (its rate: the share of one CPU the loop used)."


class LoopCpu(Collector):
    """The CPU clock of one thread, exported as a counter.

    It measures the thread that created it until :meth:`watch_current_thread` names another
    (the runtime calls it on its event loop when it starts). Where the platform cannot read
    another thread's CPU clock (``time.pthread_getcpuclockid`` is missing), nothing is exported.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._clock: int | None = None
        self.watch_current_thread()
        registry.register(self)

    def watch_current_thread(self) -> None:
        """Measure the calling thread from now on."""
        clock_of = getattr(time, "pthread_getcpuclockid", None)
        self._clock = clock_of(threading.get_ident()) if clock_of is not None else None

    def seconds(self) -> float | None:
        """The watched thread's CPU seconds so far; None when they cannot be read (the thread
        has ended, or the platform has no per-thread clocks)."""
        if self._clock is None:
            return None
        try:
            return time.clock_gettime(self._clock)
        except OSError:
            return None

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(CPU_NAME, CPU_HELP)

    def collect(self) -> Iterator[Metric]:
        seconds = self.seconds()
        if seconds is not None:
            yield CounterMetricFamily(CPU_NAME, CPU_HELP, value=seconds)


class LagProbe:
    """Sets a timer every ``interval`` seconds and hands ``observe`` how late it fired."""

    def __init__(self, observe: Callable[[float], None], *, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive (got {interval})")
        self._observe = observe
        self.interval = interval

    async def run(self) -> None:
        """Probe until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            # A timer may fire up to the clock's resolution early: that is no lag.
            self._observe(max(0.0, loop.time() - due))
