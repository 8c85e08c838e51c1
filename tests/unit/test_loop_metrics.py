"""The event-loop metrics expose exactly what prometheus_client's would, minus ``_created``."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from collabgate.ops.loop_metrics import LoopCounter, LoopHistogram


def _without_created(exposition: bytes) -> list[str]:
    return [line for line in exposition.decode().splitlines() if "_created" not in line]


def test_a_histogram_exposes_the_same_buckets_count_and_sum() -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    bounds = (0.001, 0.1, 1.0)
    theirs = Histogram("wait_seconds", "Waits.", ["type"], buckets=bounds, registry=reference)
    mine = LoopHistogram("wait_seconds", "Waits.", ["type"], buckets=bounds, registry=ours)
    # On a bound, just past one, and past every bound (the +Inf bucket).
    for kind, value in [("A", 0.0005), ("A", 0.001), ("A", 0.0011), ("B", 0.1), ("A", 7.0)]:
        theirs.labels(kind).observe(value)
        mine.labels(kind).observe(value)

    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(reference))
    assert ours.get_sample_value("wait_seconds_bucket", {"type": "A", "le": "0.001"}) == 2
    assert ours.get_sample_value("wait_seconds_count", {"type": "A"}) == 4


def test_a_counter_exposes_its_total_with_or_without_labels() -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    Counter("frames_total", "Frames.", registry=reference).inc(3)
    Counter("typed_total", "Typed.", ["type"], registry=reference).labels("X").inc()
    mine = LoopCounter("frames_total", "Frames.", registry=ours)
    mine.inc()
    mine.inc(2)
    LoopCounter("typed_total", "Typed.", ["type"], registry=ours).labels("X").inc()

    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(reference))
    assert ours.get_sample_value("frames_total") == 3


def test_labels_must_match_the_declared_names() -> None:
    counter = LoopCounter("typed_total", "Typed.", ["type"])
    with pytest.raises(ValueError, match="typed takes labels \\('type',\\)"):
        counter.labels("X", "Y")
    histogram = LoopHistogram("size_bytes", "Sizes.", ["kind"], buckets=(1.0,))
    with pytest.raises(ValueError, match="size_bytes takes labels"):
        histogram.labels()


def test_a_name_registered_twice_is_refused() -> None:
    registry = CollectorRegistry()
    LoopCounter("frames_total", "Frames.", registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("frames_total", "Frames.", registry=registry)
