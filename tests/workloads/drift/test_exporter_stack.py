"""The exporter, started from the exact command line of the Deployment the operator renders, against
the real kube-apiserver: gauges scraped over HTTP, status applied next to the operator's conditions,
bad input reported and retried without the process exiting."""

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from streamguard.api.common import API_VERSION, GROUP, VERSION
from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from streamguard.jobspec import JOB_CONFIG_DIR, JOB_CONFIG_KEY, JOB_CONFIG_PATH
from streamguard.operator.render.common import Owner
from streamguard.operator.render.driftmonitor import render
from streamguard.operator.settings import OperatorSettings

from .drift_data import AMOUNT_FEATURES, VIEW, customer_days, monitor_spec, write
from .pod import container_of, start

pytestmark = pytest.mark.stack

NUMERIC_FEATURES = [*AMOUNT_FEATURES, "txn_count_1d", "distinct_merchants_1d"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _wait(what: str, probe: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _scrape(port: int) -> Samples:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _sample(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; NaN when the series is absent (so every comparison with it fails)."""
    return samples.get((name, frozenset(labels.items())), float("nan"))


class Monitor:
    """A DriftMonitor in the apiserver plus its exporter process run as the rendered pod would run it."""

    def __init__(self, api: client.ApiClient, stack: Endpoints, namespace: str, workdir: Path) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.stack = stack
        self.namespace = namespace
        self.workdir = workdir
        self.name = "customer-drift"
        self.port = free_port()
        self.process: Any = None
        self.log = workdir / "exporter.log"
        self.command: list[str] = []

    def create(self, spec: dict[str, object]) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": "DriftMonitor", "metadata": {"name": self.name}, "spec": spec}
        return cast(
            dict[str, Any],
            self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "driftmonitors", body),
        )

    def operator_condition(self) -> None:
        """What the operator applies to status under its own field manager (must survive our applies)."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "DriftMonitor",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "ExporterDeployed",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
        }
        self.objects.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            "driftmonitors",
            self.name,
            body,
            field_manager="streamguard-operator",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def run(self, created: dict[str, Any]) -> None:
        children = render(
            Owner.of(created), DriftMonitorSpec.model_validate(created["spec"]), VIEW, OperatorSettings(), False
        )
        config_map = next(c for c in children if c["kind"] == "ConfigMap")
        container = container_of(children)
        self.command = [*container["command"], *container.get("args", [])]
        job = json.loads(config_map["data"][JOB_CONFIG_KEY])
        job["metrics_port"] = self.port  # the pod's port 9109 may be taken on this shared machine
        mounted = self.workdir / "job-config"
        mounted.mkdir()
        (mounted / JOB_CONFIG_KEY).write_text(json.dumps(job))
        self.process = start(
            container, {JOB_CONFIG_DIR: mounted}, {"KUBECONFIG": self.stack.kubeconfig}, self.workdir, self.log
        )

    def scrape(self) -> Samples:
        assert self.process.poll() is None, f"exporter exited:\n{self.log.read_text()}"
        return _scrape(self.port)

    def live(self) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "driftmonitors", self.name),
        )

    def condition(self, kind: str) -> dict[str, Any] | None:
        conditions = (self.live().get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind), None)

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        code: int = self.process.wait(timeout=30)
        return code


@pytest.fixture
def monitor(
    crds: None, kube_api: client.ApiClient, stack: Endpoints, namespace: str, tmp_path: Path
) -> Iterator[Monitor]:
    handle = Monitor(kube_api, stack, namespace, tmp_path)
    yield handle
    handle.stop()


def test_shifted_amounts_reported_on_metrics_and_status(monitor: Monitor, shifted_parquet: Path) -> None:
    created = monitor.create(monitor_spec(shifted_parquet, features=NUMERIC_FEATURES, interval="3s"))
    monitor.operator_condition()
    monitor.run(created)

    assert monitor.command == ["streamguard", "workload", "drift", "--config", JOB_CONFIG_PATH]
    labels = {"view": "customer-daily", "monitor": monitor.name}
    samples = _wait(
        "drift gauges on /metrics",
        lambda: (s := monitor.scrape()) and _sample(s, "streamguard_drift_share", **labels) >= 0 and s,
    )
    for feature in NUMERIC_FEATURES:
        detected = _sample(samples, "streamguard_drift_detected", feature=feature, **labels)
        assert detected == (1.0 if feature in AMOUNT_FEATURES else 0.0), feature
    assert _sample(samples, "streamguard_drift_share", **labels) == pytest.approx(0.6)
    assert _sample(samples, "streamguard_drift_psi", feature="amount_sum_1d", **labels) >= 0.25
    assert _sample(samples, "streamguard_drift_ks_pvalue", feature="amount_avg_1d", **labels) < 0.05
    assert _sample(samples, "streamguard_drift_ks_pvalue", feature="txn_count_1d", **labels) > 0.05
    assert _sample(samples, "streamguard_drift_rows", slice="current", **labels) == 1200
    assert _sample(samples, "streamguard_drift_last_run_timestamp_seconds", **labels) > time.time() - 120
    assert _sample(samples, "streamguard_drift_run_errors_total", reason="ReferenceUnavailable", **labels) == 0

    drifted = _wait("the Drifted condition", lambda: monitor.condition("Drifted"))
    status = monitor.live()["status"]
    assert (drifted["status"], drifted["reason"]) == ("True", "DriftDetected")
    assert drifted["observedGeneration"] == created["metadata"]["generation"]
    assert f"DriftMonitor {monitor.namespace}/{monitor.name}" in drifted["message"]
    assert sorted(status["driftedFeatures"]) == sorted(AMOUNT_FEATURES)
    assert status["driftedCount"] == 3 and status["driftShare"] == pytest.approx(0.6)
    assert set(status["scores"]) == set(NUMERIC_FEATURES)
    assert monitor.condition("Ready") is not None, "the operator's condition was removed by the exporter's apply"
    managers = {m["manager"] for m in monitor.live()["metadata"]["managedFields"] if m.get("subresource") == "status"}
    assert managers == {"streamguard-drift", "streamguard-operator"}

    assert monitor.stop() == 0, monitor.log.read_text()  # SIGTERM: clean exit


def test_no_shift_is_not_drifted(monitor: Monitor, steady_parquet: Path) -> None:
    monitor.run(monitor.create(monitor_spec(steady_parquet, features=NUMERIC_FEATURES, interval="1m")))

    drifted = _wait("the Drifted condition", lambda: monitor.condition("Drifted"))
    assert (drifted["status"], drifted["reason"]) == ("False", "BelowThreshold")
    assert monitor.live()["status"]["driftShare"] < 0.3
    assert _sample(monitor.scrape(), "streamguard_drift_share", view="customer-daily", monitor=monitor.name) < 0.3


def _errors(monitor: Monitor, reason: str) -> float:
    value = _sample(
        monitor.scrape(),
        "streamguard_drift_run_errors_total",
        view="customer-daily",
        monitor=monitor.name,
        reason=reason,
    )
    return value or 0.0


def test_missing_reference_reported_retried_and_recovered(monitor: Monitor, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    reference = data / "reference.parquet"
    current = write(customer_days(), data / "current.parquet")
    spec = monitor_spec(current, features=NUMERIC_FEATURES, interval="2s")
    spec["reference"] = {"path": str(reference)}
    monitor.run(monitor.create(spec))

    _wait("two failed runs", lambda: _errors(monitor, "ReferenceUnavailable") >= 2)
    condition = _wait("the error condition", lambda: monitor.condition("Drifted"))
    assert (condition["status"], condition["reason"]) == ("Unknown", "ReferenceUnavailable")
    assert condition["message"].startswith(
        f"DriftMonitor {monitor.namespace}/{monitor.name}: spec.reference.path: {reference} does not exist"
    )
    assert "ReferenceUnavailable" in monitor.log.read_text()
    assert monitor.process.poll() is None  # still running: no crash loop

    write(customer_days(), reference)  # the data lands; the next run succeeds
    recovered = _wait("recovery", lambda: (c := monitor.condition("Drifted")) and c["status"] != "Unknown" and c)
    assert recovered["reason"] == "BelowThreshold"
    assert monitor.live()["status"]["driftedCount"] == 0


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"current": {"start": "2027-01-01T00:00:00Z"}}, "CurrentWindowEmpty", "spec.current"),
        ({"features": [*NUMERIC_FEATURES, "home_country_code"]}, "FeatureUnknown", "spec.features"),
        ({"dropColumn": "amount_max_1d"}, "FeatureMissing", "spec.features"),
    ],
)
def test_bad_input_named_in_status(
    monitor: Monitor, tmp_path: Path, change: dict[str, Any], reason: str, field: str
) -> None:
    frame = customer_days()
    if "dropColumn" in change:
        frame = frame.drop(columns=[change["dropColumn"]])
    path = write(frame, tmp_path / "data.parquet")
    spec = monitor_spec(path, features=NUMERIC_FEATURES, interval="2s")
    if "current" in change:
        spec["current"] = {"path": str(path), **change["current"]}
    if "features" in change:
        spec["features"] = change["features"]
    monitor.run(monitor.create(spec))

    condition = _wait(reason, lambda: (c := monitor.condition("Drifted")) and c["reason"] == reason and c)
    assert condition["status"] == "Unknown"
    assert condition["message"].startswith(f"DriftMonitor {monitor.namespace}/{monitor.name}: {field}: ")
    _wait("a retry", lambda: _errors(monitor, reason) >= 2)
    assert monitor.process.poll() is None
