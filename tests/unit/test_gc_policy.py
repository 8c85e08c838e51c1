"""The garbage-collector policy: every pause metered, survivors frozen, cycles still reclaimed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from collabgate.ops.gc_policy import GcPolicy
from collabgate.ops.metrics import Metrics


class Node:
    def __init__(self) -> None:
        self.partner: Node | None = None


def full_collections(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "collabgate_gc_pause_seconds_count", {"generation": "2"}
    )
    return value or 0.0


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    yield Metrics()
    gc.unfreeze()


def test_every_collection_is_metered_and_a_long_one_logged(metrics: Metrics) -> None:
    policy = GcPolicy(metrics.gc_pause, warn_seconds=1e-9, freeze=False, full_interval=60)
    policy.install()
    try:
        with capture_logs() as logs:
            gc.collect()
    finally:
        policy.remove()
    assert full_collections(metrics) == 1
    pause = next(entry for entry in logs if entry["event"] == "gc_pause")
    assert pause["generation"] == 2
    assert pause["pause_ms"] >= 0


def test_survivors_of_a_full_collection_are_frozen_and_cycles_among_them_reclaimed_later(
    metrics: Metrics,
) -> None:
    policy = GcPolicy(metrics.gc_pause, warn_seconds=10, freeze=True, full_interval=60)
    first, second = Node(), Node()
    first.partner, second.partner = second, first  # a cycle: only the collector frees it
    alive = weakref.ref(first)
    policy.install()
    try:
        gc.collect()
        assert gc.get_freeze_count() > 0
        del first, second
        gc.collect()
        assert alive() is not None  # frozen: a full collection no longer walks it
        policy.collect_everything()
        assert alive() is None
    finally:
        policy.remove()
    assert gc.get_freeze_count() == 0


def test_the_young_generation_is_sized_while_installed_and_restored_after(
    metrics: Metrics,
) -> None:
    before = gc.get_threshold()
    policy = GcPolicy(
        metrics.gc_pause, warn_seconds=10, freeze=False, full_interval=60, young_threshold=50_000
    )
    policy.install()
    try:
        assert gc.get_threshold() == (50_000, *before[1:])
    finally:
        policy.remove()
    assert gc.get_threshold() == before


def test_a_relay_that_frees_what_it_allocates_triggers_no_young_collection(
    metrics: Metrics,
) -> None:
    """What made the p99: at 700, the frames of one busy turn set off a collection."""

    def relay(turns: int) -> None:
        for turn in range(turns):  # a turn allocates a burst of frames, then frees them all
            in_flight = [{"frame": n, "turn": turn} for n in range(1_000)]
            del in_flight

    def young_collections() -> float:
        value = metrics.registry.get_sample_value(
            "collabgate_gc_pause_seconds_count", {"generation": "0"}
        )
        return value or 0.0

    for threshold, expect_collections in ((700, True), (50_000, False)):
        policy = GcPolicy(
            metrics.gc_pause,
            warn_seconds=10,
            freeze=False,
            full_interval=60,
            young_threshold=threshold,
        )
        gc.collect()
        before = young_collections()
        policy.install()
        try:
            relay(50)
        finally:
            policy.remove()
        assert (young_collections() > before) is expect_collections, threshold


def test_the_startup_heap_is_frozen_and_unfrozen_on_removal(metrics: Metrics) -> None:
    policy = GcPolicy(metrics.gc_pause, warn_seconds=10, freeze=False, full_interval=60)
    policy.install()
    try:
        policy.freeze_startup_heap()
        assert gc.get_freeze_count() > 0
    finally:
        policy.remove()
    assert gc.get_freeze_count() == 0


def test_removed_policy_sees_nothing(metrics: Metrics) -> None:
    policy = GcPolicy(metrics.gc_pause, warn_seconds=10, freeze=True, full_interval=60)
    policy.install()
    policy.install()  # idempotent
    policy.remove()
    gc.collect()
    assert policy not in gc.callbacks
    assert full_collections(metrics) == 0
    assert gc.get_freeze_count() == 0


def test_a_closed_outbox_is_freed_by_reference_counting_alone() -> None:
    """A frozen connection that leaves no cycle behind does not wait for a full collection."""
    from collabgate.session.outbox import Outbox

    async def scenario() -> weakref.ref[Node]:
        outbox = Outbox(max_bytes=1024)
        witness = Node()  # lives exactly as long as the notify function, which holds the outbox
        outbox.attach(lambda: (outbox.take_all(), witness))  # as the flusher's: a cycle
        outbox.push("frame")
        outbox.close()
        return weakref.ref(witness)

    gc.disable()
    try:
        gone = asyncio.run(scenario())
        assert gone() is None
    finally:
        gc.enable()
