"""Counters and histograms for the event loop's thread alone: the metrics of every message.

prometheus_client's ``Counter.inc`` and ``Histogram.observe`` are thread-safe: each takes a
lock, checks that the metric is observable, and ``observe`` walks the buckets in Python. On the
relay path that is four calls per update, and at 3,000 y-websocket clients (6,000 updates a
second on one event loop) removing them lowered the p99 delivery latency by a third
(docs/performance.md). The types here keep plain numbers instead, which is safe because only
the event loop's thread changes them and reads them (``/metrics`` is served on the loop), and
hand them to the registry as ordinary metric families when it is scraped: same names, labels,
buckets and exposition as their prometheus_client counterparts, without the ``_created``
samples.

Anything observed from another thread (the SQLite writer's commit times) stays a
prometheus_client metric.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Generic, TypeVar

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

V = TypeVar("V")


class CounterValue:
    """One counter (one label set): ``inc`` adds, and nothing else happens."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramValue:
    """One histogram (one label set): a count per bucket and the sum of what was observed."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        #: Per bucket, not cumulative; the last one is ``+Inf``.
        self.counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # The first bound >= value: Prometheus buckets are "less than or equal".
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class _LoopMetric(Collector, Generic[V]):
    """Children per label set, created on first use, and the registration: what both kinds share."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        new_child: Callable[[], V],
        registry: CollectorRegistry | None,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._new_child = new_child
        self._children: dict[tuple[str, ...], V] = {}
        if not self._labelnames:
            self._children[()] = new_child()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> V:
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child


class LoopCounter(_LoopMetric[CounterValue]):
    """A counter, optionally labelled, whose children are :class:`CounterValue`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(
            name.removesuffix("_total"), documentation, labelnames, CounterValue, registry
        )

    def inc(self, amount: float = 1.0) -> None:
        self._children[()].inc(amount)

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_LoopMetric[HistogramValue]):
    """A histogram, optionally labelled, whose children are :class:`HistogramValue`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._bounds = tuple(sorted(buckets))
        super().__init__(
            name, documentation, labelnames, partial(HistogramValue, self._bounds), registry
        )

    def observe(self, value: float) -> None:
        self._children[()].observe(value)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        bounds = [*map(floatToGoString, self._bounds), "+Inf"]
        for values, child in self._children.items():
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, child.counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric(list(values), buckets, child.sum)
        yield family
