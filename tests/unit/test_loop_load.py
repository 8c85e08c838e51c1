"""ops/loop_load.py: the event loop's own CPU time, and how late its timers fire."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from collabgate.ops.loop_load import LagProbe, LoopCpu
from collabgate.ops.metrics import Metrics

CPU = "collabgate_event_loop_cpu_seconds_total"


def burn(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def cpu_seconds(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(CPU)
    assert value is not None, f"{CPU} is not exported"
    return value


def test_the_counter_holds_the_watched_threads_cpu_and_no_other_threads() -> None:
    registry = CollectorRegistry()
    LoopCpu(registry)
    start = cpu_seconds(registry)
    burn(0.05)
    after_own = cpu_seconds(registry)
    other = threading.Thread(target=burn, args=(0.3,))
    other.start()
    other.join()
    after_other = cpu_seconds(registry)
    assert after_own - start >= 0.05
    assert after_other - after_own < 0.1  # the other thread's 0.3 s are not the loop's


def test_watching_another_thread_counts_that_one_and_nothing_once_it_has_ended() -> None:
    registry = CollectorRegistry()
    cpu = LoopCpu(registry)
    seen: list[float | None] = []

    def watched() -> None:
        cpu.watch_current_thread()
        burn(0.1)
        seen.append(cpu.seconds())

    thread = threading.Thread(target=watched)
    thread.start()
    thread.join()
    (in_thread,) = seen
    assert in_thread is not None
    assert in_thread >= 0.1
    # A thread that has ended has no clock left to read: no value rather than a stale one.
    assert registry.get_sample_value(CPU) is None


def test_the_gateway_exports_both_loop_metrics() -> None:
    metrics = Metrics()
    metrics.event_loop_lag.observe(0.003)
    text = metrics.render().decode()
    assert f"{CPU} " in text
    assert 'collabgate_event_loop_lag_seconds_bucket{le="0.005"} 1.0' in text
    assert 'collabgate_event_loop_lag_seconds_bucket{le="0.0025"} 0.0' in text


async def test_the_lag_probe_sees_a_loop_held_by_a_long_callback() -> None:
    lags: list[float] = []
    ticked, held = asyncio.Event(), asyncio.Event()

    def observe(lag: float) -> None:
        lags.append(lag)
        ticked.set()
        if lag >= 0.15:
            held.set()

    probe = asyncio.create_task(LagProbe(observe, interval=0.01).run())
    try:
        await asyncio.wait_for(ticked.wait(), 5)
        quiet = list(lags)
        burn(0.2)  # the load under test: a callback that holds the loop for 200 ms of CPU
        await asyncio.wait_for(held.wait(), 5)
    finally:
        probe.cancel()
    assert max(quiet) < 0.1
    assert 0.15 <= max(lags) < 1.0


def test_the_lag_probe_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        LagProbe(lambda _: None, interval=0)
