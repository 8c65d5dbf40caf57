"""Prometheus metrics of the serving process (one registry per app, so tests can run several)."""

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamguard.serving.health import ViewFreshness

LATENCY_BUCKETS = (
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class _FreshnessCollector(Collector):
    """Per served view, computed at scrape time from the records last read (so the age keeps growing
    while a view's data stops arriving): ``streamguard_feature_freshness_seconds``,
    ``streamguard_feature_fresh`` (0/1, the rule ``/readyz`` and the lookups apply),
    ``streamguard_feature_freshness_sla_seconds``, ``streamguard_feature_view_required`` and
    ``streamguard_feature_store_covered`` (0/1 per view and writer part: the store's current generation
    holds what the view serves; ``/readyz`` names the reason when not)."""

    def __init__(self, snapshot: Callable[[], tuple[ViewFreshness, ...]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "streamguard_feature_freshness_seconds",
            "Age of the data of each served FeatureView: now minus the time up to which it is known complete "
            "(stream: its last caught-up progress; NaN when unknown).",
            labels=["view"],
        )
        fresh = GaugeMetricFamily(
            "streamguard_feature_fresh",
            "1 while a served FeatureView is fresh (its values are served present), else 0 (served stale).",
            labels=["view"],
        )
        sla = GaugeMetricFamily(
            "streamguard_feature_freshness_sla_seconds", "Freshness SLA of each served FeatureView.", labels=["view"]
        )
        required = GaugeMetricFamily(
            "streamguard_feature_view_required",
            "1 when readiness requires the view to be fresh, 0 when it is advisory.",
            labels=["view"],
        )
        covered = GaugeMetricFamily(
            "streamguard_feature_store_covered",
            "1 while the online store's current generation covers what a FeatureView serves from a writer part "
            "(batch: materializer, stream: streaming job), else 0 (its values are served stale).",
            labels=["view", "part"],
        )
        now = time.time()
        for view in self._snapshot():
            for part, verdict in view.coverage(now).items():
                covered.add_metric([view.view, part], 1.0 if verdict.covered else 0.0)
            seconds = view.age(now)
            age.add_metric([view.view], float("nan") if seconds is None else seconds)
            fresh.add_metric([view.view], 1.0 if view.fresh(now) else 0.0)
            sla.add_metric([view.view], view.sla_seconds)
            required.add_metric([view.view], 1.0 if view.required else 0.0)
        yield age
        yield fresh
        yield sla
        yield required
        yield covered


class ServingMetrics:
    def __init__(self, freshness: Callable[[], tuple[ViewFreshness, ...]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_duration = Histogram(
            "streamguard_serving_request_duration_seconds",
            "Time to answer a request, from the handler's start to the response body being ready.",
            ["endpoint", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "streamguard_serving_cache_hits", "Redis reads answered from the in-process cache.", registry=self.registry
        )
        self.cache_misses = Counter(
            "streamguard_serving_cache_misses", "Redis reads not found in the in-process cache.", registry=self.registry
        )
        self.redis_errors = Counter(
            "streamguard_serving_redis_errors",
            "Requests or health checks that failed to talk to Redis.",
            registry=self.registry,
        )
        self.lookups_refused = Counter(
            "streamguard_serving_lookups_refused",
            "Lookups answered 429: the worker's lookups in progress (worker), one client's body bytes "
            "(client_bytes) or values (client_values) in progress at their limit, or its values a second over "
            "its rate (client_rate).",
            ["reason"],
            registry=self.registry,
        )
        self.registry.register(_FreshnessCollector(freshness))
        self._durations: dict[tuple[str, int], Histogram] = {}

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        child = self._durations.get((endpoint, code))
        if child is None:
            child = self._durations[(endpoint, code)] = self.request_duration.labels(endpoint, str(code))
        child.observe(seconds)
