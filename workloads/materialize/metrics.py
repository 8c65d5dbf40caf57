"""Prometheus metrics of materialization runs.

A CronJob run is short-lived, so the registry is written in the text exposition format to a file
(``--metrics-file``, for node-exporter's textfile collector or a sidecar) at the end of the run.
"""

from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile

from streamguard.workloads.metricfamily import Family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        family = Family(self.registry, ("view",))
        self.rows = family.counter("streamguard_materialize_rows_total", "Entity rows written to the online store.")
        self.values = family.counter("streamguard_materialize_feature_values_total",
                                     "Feature values written to the online store.")
        self.failures = family.counter("streamguard_materialize_failures_total", "Materialization runs that failed.")
        self.backfills = family.counter(
            "streamguard_materialize_backfills_total",
            "Runs that backfilled the TTL's interval after the online store's generation changed.")
        self.duration = family.histogram("streamguard_materialize_duration_seconds",
                                         "Wall time of a materialization run.",
                                         (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
        self.data_age = family.gauge(
            "streamguard_materialize_data_age_seconds",
            "Age of the newest source row a successful run materialized, at the end of that run (frozen until the "
            "next run; serving's live figure is streamguard_feature_freshness_seconds).")

    def succeeded(
        self, view: str, rows: int, features: int, seconds: float, freshness: int | None, backfill: bool = False
    ) -> None:
        self.rows.labels(view).inc(rows)
        if backfill:
            self.backfills.labels(view).inc()
        self.values.labels(view).inc(rows * features)
        self.duration.labels(view).observe(seconds)
        if freshness is not None:
            self.data_age.labels(view).set(freshness)

    def failed(self, view: str) -> None:
        self.failures.labels(view).inc()

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)
