"""The exporter's Prometheus metrics (one registry per exporter; names documented in docs/metrics.md)."""

from prometheus_client import CollectorRegistry

from streamguard.workloads.drift.analysis import DriftResult
from streamguard.workloads.drift.errors import REASONS
from streamguard.workloads.drift.plan import DriftPlan
from streamguard.workloads.metricfamily import Family

FEATURE_LABELS = ("view", "feature", "monitor")
MONITOR_LABELS = ("view", "monitor")


class DriftMetrics:
    """Gauges of the latest successful run plus run bookkeeping."""

    def __init__(self, plan: DriftPlan, registry: CollectorRegistry | None = None) -> None:
        self.plan = plan
        self.registry = registry or CollectorRegistry()
        feature = Family(self.registry, FEATURE_LABELS)
        monitor = Family(self.registry, MONITOR_LABELS)
        self.psi = feature.gauge("streamguard_drift_psi",
                                 "Population stability index of a feature, current vs reference.")
        self.ks_pvalue = feature.gauge("streamguard_drift_ks_pvalue",
                                       "Kolmogorov-Smirnov p-value of a feature, current vs reference.")
        self.detected = feature.gauge("streamguard_drift_detected",
                                      "1 when the feature drifted beyond its threshold, else 0.")
        self.share = monitor.gauge("streamguard_drift_share", "Fraction of watched features that drifted (0-1).")
        self.rows = monitor.gauge("streamguard_drift_rows",
                                  "Rows compared in the last run, per slice (reference, current).", "slice")
        self.duration = monitor.gauge("streamguard_drift_run_duration_seconds",
                                      "Wall time of the last drift run (load + Evidently).")
        self.last_run = monitor.gauge("streamguard_drift_last_run_timestamp_seconds",
                                      "Unix time of the last successful drift run.")
        self.errors = monitor.counter("streamguard_drift_run_errors", "Drift runs that failed, by condition reason.",
                                      "reason")
        for reason in REASONS:
            self.errors.labels(plan.view, plan.monitor, reason)

    def observe(self, result: DriftResult, duration_seconds: float, finished_at: float) -> None:
        view, monitor = self.plan.view, self.plan.monitor
        for score in result.scores:
            gauge = self.ks_pvalue if score.method == "ks" else self.psi
            gauge.labels(view, score.feature, monitor).set(score.value)
            self.detected.labels(view, score.feature, monitor).set(1 if score.drifted else 0)
        self.share.labels(view, monitor).set(result.drift_share)
        self.rows.labels(view, monitor, "reference").set(result.reference_rows)
        self.rows.labels(view, monitor, "current").set(result.current_rows)
        self.duration.labels(view, monitor).set(duration_seconds)
        self.last_run.labels(view, monitor).set(finished_at)

    def failed(self, reason: str, duration_seconds: float) -> None:
        """Count a failed run; the gauges keep the last good values (staleness shows in ``last_run``)."""
        self.errors.labels(self.plan.view, self.plan.monitor, reason).inc()
        self.duration.labels(self.plan.view, self.plan.monitor).set(duration_seconds)
