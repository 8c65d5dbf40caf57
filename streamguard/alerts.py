"""Prometheus alert rules for drift, for stale feature views and for the online store's capacity (pure
renderers).

``render_monitor_rules`` gives the rule groups of one DriftMonitor, with the spec's thresholds and
selectors on its ``namespace`` and ``monitor`` labels (``namespace`` is the target label Prometheus'
Kubernetes service discovery adds); ``render_prometheus_rule`` wraps them in a
``monitoring.coreos.com/v1`` PrometheusRule for the operator. ``render_default_rules`` is the plain rules
file shipped in the chart: the same rules for every monitor with the default thresholds, plus serving's
stale-view rules (``render_freshness_rules``) and the online store's rules (``render_store_rules``: one
Redis serves every namespace, so they are not per resource).
Regenerate the chart file with ``python -m streamguard.alerts``.
"""

import sys
from typing import Any

import yaml

from streamguard.api.driftmonitor import DriftMonitorSpec, Thresholds
from streamguard.api.durations import duration_seconds, format_duration

CHART_RULES_FILE = "charts/streamguard/files/prometheus-rules.yaml"
STALE_AFTER_RUNS = 3
"""A monitor whose last successful run is older than this many intervals is stale."""
DEFAULT_INTERVAL = "10m"
STORE_MEMORY_WARNING = 0.8
"""Share of Redis ``maxmemory`` at which the capacity alert fires (at 100 % Redis refuses writes)."""
REQUIRED_STALE_FOR = "1m"
ADVISORY_STALE_FOR = "5m"


def _selector(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


def _rules(thresholds: Thresholds, interval: str, with_ks: bool, labels: dict[str, str]) -> list[dict[str, Any]]:
    sel = _selector(labels)
    interval_s = duration_seconds(interval)
    window = format_duration(max(2 * interval_s, 300))
    where = "{{ $labels.namespace }}/{{ $labels.monitor }}"
    rules: list[dict[str, Any]] = [
        {
            "alert": "StreamGuardFeatureDrift",
            "expr": f"streamguard_drift_psi{sel} >= {thresholds.psi:g}",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Feature {{ $labels.feature }} of view {{ $labels.view }} drifted (PSI)",
                "description": (
                    f'DriftMonitor {where}: PSI of {{{{ $labels.feature }}}} is {{{{ $value | printf "%.3f" }}}}, '
                    f"at or above {thresholds.psi:g}."
                ),
            },
        },
    ]
    if with_ks:
        rules.append(
            {
                "alert": "StreamGuardFeatureDriftKS",
                "expr": f"streamguard_drift_ks_pvalue{sel} < {thresholds.ks_p_value:g}",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Feature {{ $labels.feature }} of view {{ $labels.view }} drifted (KS test)",
                    "description": (
                        f"DriftMonitor {where}: KS p-value of {{{{ $labels.feature }}}} is {{{{ $value }}}}, "
                        f"below {thresholds.ks_p_value:g}."
                    ),
                },
            }
        )
    rules += [
        {
            "alert": "StreamGuardDriftShareHigh",
            "expr": f"streamguard_drift_share{sel} >= {thresholds.drift_share:g}",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Drift share of view {{ $labels.view }} over threshold",
                "description": (
                    f"DriftMonitor {where}: {{{{ $value | humanizePercentage }}}} of the watched features "
                    f"drifted (threshold {thresholds.drift_share:g}); check the upstream data and the model."
                ),
            },
        },
        {
            "alert": "StreamGuardDriftRunFailing",
            "expr": (
                "sum by (namespace, monitor, view, reason) "
                f"(increase(streamguard_drift_run_errors_total{sel}[{window}])) > 0"
            ),
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Drift runs of {{ $labels.monitor }} fail ({{ $labels.reason }})",
                "description": (
                    f"DriftMonitor {where}: drift runs failed with reason {{{{ $labels.reason }}}} "
                    f"in the last {window}; the Drifted condition's message says which field to fix."
                ),
            },
        },
        {
            "alert": "StreamGuardDriftStale",
            "expr": (f"time() - streamguard_drift_last_run_timestamp_seconds{sel} > {STALE_AFTER_RUNS * interval_s}"),
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "No successful drift run of {{ $labels.monitor }} for a while",
                "description": (
                    f"DriftMonitor {where}: the last successful drift run was {{{{ $value | humanizeDuration }}}} "
                    f"ago (expected every {interval})."
                ),
            },
        },
    ]
    return rules


def render_monitor_rules(namespace: str, name: str, spec: DriftMonitorSpec) -> list[dict[str, Any]]:
    """The rule groups of one DriftMonitor (its thresholds, its series only)."""
    labels = {"namespace": namespace, "monitor": name}
    return [
        {
            "name": f"streamguard-drift.{namespace}.{name}",
            "rules": _rules(spec.thresholds, spec.interval, bool(spec.ks_features), labels),
        }
    ]


def render_prometheus_rule(
    namespace: str, name: str, spec: DriftMonitorSpec, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A ``PrometheusRule`` (prometheus-operator) named ``<monitor>-drift`` holding the monitor's rules."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": f"{name}-drift", "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"groups": render_monitor_rules(namespace, name, spec)},
    }


def render_store_rules() -> dict[str, Any]:
    """The online store's rule group, on redis_exporter's series (``redis_memory_*``, evictions)."""
    where = "Redis {{ $labels.instance }}"
    return {
        "name": "streamguard-online-store",
        "rules": [
            {
                "alert": "StreamGuardOnlineStoreMemoryHigh",
                "expr": f"redis_memory_used_bytes / (redis_memory_max_bytes > 0) >= {STORE_MEMORY_WARNING:g}",
                "for": "5m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": f"Online store {where} is above {STORE_MEMORY_WARNING:.0%} of maxmemory",
                    "description": (
                        f"{where} uses {{{{ $value | humanizePercentage }}}} of its maxmemory. At 100 % it refuses "
                        "writes (noeviction) and materialization fails with StoreFull. Raise maxmemory or shrink the "
                        "views (docs/online-store.md has the bytes per entity)."
                    ),
                },
            },
            {
                "alert": "StreamGuardOnlineStoreEvicting",
                "expr": "increase(redis_evicted_keys_total[5m]) > 0",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": f"Online store {where} evicts keys",
                    "description": (
                        f"{where} evicted {{{{ $value | humanize }}}} keys in 5m: an evicting maxmemory-policy is "
                        "set. Every eviction ends the online store's generation and the views must be re-seeded "
                        "(docs/online-store.md); set maxmemory-policy noeviction."
                    ),
                },
            },
        ],
    }


def _stale_view_rule(required: bool) -> dict[str, Any]:
    policy = "required" if required else "advisory"
    consequence = (
        "serving replicas that require it fail /readyz and leave the Service"
        if required
        else "readiness ignores it (advisory), so this alert is the only signal"
    )
    return {
        "alert": "StreamGuardRequiredViewStale" if required else "StreamGuardAdvisoryViewStale",
        "expr": (
            "max by (namespace, view) "
            f"(streamguard_feature_fresh == 0 and streamguard_feature_view_required == {int(required)})"
        ),
        "for": REQUIRED_STALE_FOR if required else ADVISORY_STALE_FOR,
        "labels": {"severity": "critical" if required else "warning"},
        "annotations": {
            "summary": f"{policy.capitalize()} feature view {{{{ $labels.view }}}} is served stale",
            "description": (
                f"Serving in {{{{ $labels.namespace }}}} finds view {{{{ $labels.view }}}} outside its freshness "
                f"SLA: its values come back `stale`, not `present`, and {consequence}. Check the "
                "StreamingWindow's Ready and StreamRunning conditions (docs/semantics.md)."
            ),
        },
    }


def render_freshness_rules() -> dict[str, Any]:
    """Serving's freshness rule group (``streamguard_feature_fresh`` with the readiness policy's
    ``streamguard_feature_view_required``; both series come from the same serving pod)."""
    return {"name": "streamguard-freshness", "rules": [_stale_view_rule(True), _stale_view_rule(False)]}


def render_default_rules() -> dict[str, Any]:
    """The chart's plain rules file: every monitor, default thresholds and interval; serving's freshness;
    the online store."""
    return {
        "groups": [
            {"name": "streamguard-drift", "rules": _rules(Thresholds(), DEFAULT_INTERVAL, True, {})},
            render_freshness_rules(),
            render_store_rules(),
        ]
    }


def dump_rules_file(rules: dict[str, Any]) -> str:
    header = (
        "# Generated by `python -m streamguard.alerts`. Do not edit.\n"
        "# Drift alerts for every DriftMonitor with the default thresholds (PSI 0.25, KS p 0.05, share 0.3).\n"
        "# The operator renders a PrometheusRule per DriftMonitor with that monitor's own thresholds.\n"
        "# Stale feature views (serving's streamguard_feature_fresh): required views critical, advisory warning.\n"
        "# Online store alerts (redis_exporter series): memory at 80 % of maxmemory, evictions.\n"
    )
    return header + yaml.safe_dump(rules, sort_keys=False, width=200)


if __name__ == "__main__":
    sys.stdout.write(dump_rules_file(render_default_rules()))
