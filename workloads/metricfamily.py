"""The Prometheus metrics of one workload's registry that share their label names."""

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class Family:
    """Makes gauges, counters and histograms in ``registry`` labelled ``labels`` plus any ``extra`` names."""

    registry: CollectorRegistry
    labels: tuple[str, ...]

    def gauge(self, name: str, doc: str, *extra: str) -> Gauge:
        return Gauge(name, doc, (*self.labels, *extra), registry=self.registry)

    def counter(self, name: str, doc: str, *extra: str) -> Counter:
        return Counter(name, doc, (*self.labels, *extra), registry=self.registry)

    def histogram(self, name: str, doc: str, buckets: Sequence[float], *extra: str) -> Histogram:
        return Histogram(name, doc, (*self.labels, *extra), registry=self.registry, buckets=buckets)
