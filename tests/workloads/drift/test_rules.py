"""Alert rules: the chart file is the rendered one, and promtool (built from the Go module proxy) accepts
every rendered rule file and fires the alerts on the right series only (``promtool test rules``)."""

import subprocess
from pathlib import Path

import pytest
import yaml

from streamguard.alerts import (
    CHART_RULES_FILE,
    dump_rules_file,
    render_default_rules,
    render_freshness_rules,
    render_prometheus_rule,
    render_store_rules,
)
from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.devstack.provision import ensure

REPO = Path(__file__).resolve().parents[3]

SPEC = DriftMonitorSpec.model_validate(
    {
        "featureView": "customer-daily",
        "features": ["amount", "count"],
        "ksFeatures": ["count"],
        "reference": {"path": "/data/ref.parquet"},
        "current": {"path": "/data/cur.parquet", "last": "1d"},
        "thresholds": {"psi": 0.3, "ksPValue": 0.01, "driftShare": 0.4},
        "interval": "10m",
    }
)


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool from the cache; built on first use by the provisioning script (several minutes, once)."""
    return ensure(["promtool"])["promtool"].ready


def _promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_chart_rules_file_is_the_rendered_default() -> None:
    committed = (REPO / CHART_RULES_FILE).read_text()
    assert committed == dump_rules_file(render_default_rules()), (
        f"{CHART_RULES_FILE} is stale: regenerate it with "
        f"`python -m streamguard.alerts > {CHART_RULES_FILE}`"
    )


def test_prometheus_rule_uses_the_monitor_thresholds() -> None:
    rule = render_prometheus_rule("fraud", "customer-drift", SPEC, labels={"app.kubernetes.io/part-of": "streamguard"})
    assert rule["kind"] == "PrometheusRule" and rule["metadata"]["name"] == "customer-drift-drift"
    exprs = {r["alert"]: r["expr"] for r in rule["spec"]["groups"][0]["rules"]}
    assert (
        exprs["StreamGuardFeatureDrift"] == 'streamguard_drift_psi{namespace="fraud", monitor="customer-drift"} >= 0.3'
    )
    assert exprs["StreamGuardFeatureDriftKS"].endswith("< 0.01")
    assert exprs["StreamGuardDriftShareHigh"].endswith(">= 0.4")
    assert exprs["StreamGuardDriftStale"].endswith("> 1800")


def test_promtool_accepts_chart_and_rendered_rules(promtool: Path, tmp_path: Path) -> None:
    no_ks = SPEC.model_copy(update={"ks_features": []})
    for name, spec in (("with-ks", SPEC), ("psi-only", no_ks)):
        groups = render_prometheus_rule("fraud", name, spec)["spec"]
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(groups))
    files = [str(REPO / CHART_RULES_FILE), "with-ks.yaml", "psi-only.yaml"]

    checked = _promtool(promtool, "check", "rules", *files, cwd=tmp_path)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout  # the chart: 5 drift + 2 stale views + 2 online store
    assert "SUCCESS: 5 rules found" in checked.stdout
    assert "SUCCESS: 4 rules found" in checked.stdout


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _alert(labels: dict[str, str], summary: str, description: str) -> dict[str, object]:
    """One alert promtool must see firing: its labels and annotations, exactly."""
    return {"exp_labels": labels, "exp_annotations": {"summary": summary, "description": description}}


def _at(eval_time: str, alertname: str, *alerts: dict[str, object]) -> dict[str, object]:
    """At ``eval_time``, ``alertname`` fires exactly ``alerts`` (none: it does not fire)."""
    return {"eval_time": eval_time, "alertname": alertname, "exp_alerts": list(alerts)}


def _assert_promtool_test_passes(promtool: Path, tmp_path: Path, rules: dict[str, object],
                                 series: list[dict[str, str]], checks: list[dict[str, object]]) -> None:
    """``promtool test rules``: ``rules`` evaluated every minute over ``series`` meet every check."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))

    result = _promtool(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_alerts_fire_for_this_monitor_only(promtool: Path, tmp_path: Path) -> None:
    mon = {"namespace": "fraud", "monitor": "cd", "view": "customer-daily"}
    other = {**mon, "namespace": "other"}
    where = "DriftMonitor fraud/cd"
    series = [
        _series("streamguard_drift_psi", {**mon, "feature": "amount"}, "0.45x40"),
        _series("streamguard_drift_psi", {**mon, "feature": "other"}, "0.05x40"),
        _series("streamguard_drift_psi", {**other, "feature": "amount"}, "0.9x40"),
        _series("streamguard_drift_ks_pvalue", {**mon, "feature": "count"}, "0.5x40"),
        _series("streamguard_drift_share", mon, "0.5x40"),
        _series("streamguard_drift_run_errors_total", {**mon, "reason": "CurrentWindowEmpty"}, "0x20 1+1x20"),
        _series("streamguard_drift_last_run_timestamp_seconds", mon, "0x40"),
    ]
    checks = [
        _at("5m", "StreamGuardFeatureDrift",
            _alert({**mon, "feature": "amount", "severity": "warning"},
                   "Feature amount of view customer-daily drifted (PSI)",
                   f"{where}: PSI of amount is 0.450, at or above 0.3.")),
        _at("5m", "StreamGuardFeatureDriftKS"),
        _at("5m", "StreamGuardDriftShareHigh",
            _alert({**mon, "severity": "critical"}, "Drift share of view customer-daily over threshold",
                   f"{where}: 50% of the watched features drifted (threshold 0.4); check the upstream data and the "
                   "model.")),
        _at("10m", "StreamGuardDriftRunFailing"),
        _at("30m", "StreamGuardDriftRunFailing",
            _alert({**mon, "reason": "CurrentWindowEmpty", "severity": "warning"},
                   "Drift runs of cd fail (CurrentWindowEmpty)",
                   f"{where}: drift runs failed with reason CurrentWindowEmpty in the last 20m; the Drifted "
                   "condition's message says which field to fix.")),
        _at("20m", "StreamGuardDriftStale"),
        _at("35m", "StreamGuardDriftStale",
            _alert({**mon, "severity": "warning"}, "No successful drift run of cd for a while",
                   f"{where}: the last successful drift run was 35m 0s ago (expected every 10m).")),
    ]
    _assert_promtool_test_passes(promtool, tmp_path, render_prometheus_rule("fraud", "cd", SPEC)["spec"], series,
                                 checks)


def test_promtool_store_memory_alert_fires_at_80_percent_of_maxmemory(promtool: Path, tmp_path: Path) -> None:
    full, roomy, unlimited = ({"instance": f"redis-{n}:9121"} for n in ("full", "roomy", "unlimited"))
    series = [
        _series("redis_memory_used_bytes", full, "850x20"),
        _series("redis_memory_max_bytes", full, "1000x20"),
        _series("redis_memory_used_bytes", roomy, "790x20"),
        _series("redis_memory_max_bytes", roomy, "1000x20"),
        _series("redis_memory_used_bytes", unlimited, "5000x20"),
        _series("redis_memory_max_bytes", unlimited, "0x20"),
        _series("redis_evicted_keys_total", full, "0x5 0+10x15"),
        _series("redis_evicted_keys_total", roomy, "0x20"),
    ]
    checks = [
        _at("3m", "StreamGuardOnlineStoreMemoryHigh"),
        _at("10m", "StreamGuardOnlineStoreMemoryHigh",
            _alert({**full, "severity": "warning"}, "Online store Redis redis-full:9121 is above 80% of maxmemory",
                   "Redis redis-full:9121 uses 85% of its maxmemory. At 100 % it refuses writes (noeviction) and "
                   "materialization fails with StoreFull. Raise maxmemory or shrink the views "
                   "(docs/online-store.md has the bytes per entity).")),
        _at("4m", "StreamGuardOnlineStoreEvicting"),
        _at("12m", "StreamGuardOnlineStoreEvicting",
            _alert({**full, "severity": "critical"}, "Online store Redis redis-full:9121 evicts keys",
                   "Redis redis-full:9121 evicted 50 keys in 5m: an evicting maxmemory-policy is set. Every "
                   "eviction ends the online store's generation and the views must be re-seeded "
                   "(docs/online-store.md); set maxmemory-policy noeviction.")),
    ]
    _assert_promtool_test_passes(promtool, tmp_path, {"groups": [render_store_rules()]}, series, checks)


def test_promtool_stale_view_alerts_follow_the_readiness_policy(promtool: Path, tmp_path: Path) -> None:
    """Serving's gauges of two replicas: a required view stale on both, a required view fresh, an advisory view
    stale, and a required view that went stale for less than the ``for`` period."""
    series = []
    for pod in ("serving-a", "serving-b"):
        target = {"namespace": "fraud", "pod": pod}
        for view, fresh, required in (
            ("device-stream", "1x3 0x20", "1x23"),
            ("account-realtime", "1x23", "1x23"),
            ("experiment", "0x23", "0x23"),
            ("customer-profile", "1x21 0x1", "1x23"),
        ):
            series.append(_series("streamguard_feature_fresh", {**target, "view": view}, fresh))
            series.append(_series("streamguard_feature_view_required", {**target, "view": view}, required))

    def stale(view: str, policy: str, severity: str, consequence: str) -> dict[str, object]:
        return _alert({"namespace": "fraud", "view": view, "severity": severity},
                      f"{policy} feature view {view} is served stale",
                      f"Serving in fraud finds view {view} outside its freshness SLA: its values come back `stale`, "
                      f"not `present`, and {consequence}. Check the StreamingWindow's Ready and StreamRunning "
                      "conditions (docs/semantics.md).")

    checks = [
        _at("3m", "StreamGuardRequiredViewStale"),
        _at("22m", "StreamGuardRequiredViewStale",
            stale("device-stream", "Required", "critical",
                  "serving replicas that require it fail /readyz and leave the Service")),
        _at("4m", "StreamGuardAdvisoryViewStale"),
        _at("22m", "StreamGuardAdvisoryViewStale",
            stale("experiment", "Advisory", "warning",
                  "readiness ignores it (advisory), so this alert is the only signal")),
    ]
    _assert_promtool_test_passes(promtool, tmp_path, {"groups": [render_freshness_rules()]}, series, checks)
