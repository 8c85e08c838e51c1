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
