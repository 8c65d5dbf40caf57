"""The status the exporter applies (pure rendering)."""

from datetime import UTC, datetime

from streamguard.workloads.drift.analysis import DriftResult, FeatureScore
from streamguard.workloads.drift.errors import DriftInputError
from streamguard.workloads.drift.plan import DriftPlan
from streamguard.workloads.drift.status import render_status

PLAN = DriftPlan(
    namespace="fraud",
    monitor="customer-drift",
    view="customer-daily",
    generation=3,
    numerical=("amount", "count"),
    categorical=(),
    ks_features=("count",),
    psi_threshold=0.25,
    ks_p_value=0.05,
    drift_share=0.3,
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DRIFTED = DriftResult(
    scores=(FeatureScore("amount", "psi", 0.8, 0.25, True), FeatureScore("count", "ks", 0.4, 0.05, False)),
    reference_rows=100,
    current_rows=10,
    drift_share_threshold=0.3,
)


def test_drift_result_renders_own_fields_and_a_true_condition() -> None:
    body = render_status(PLAN, DRIFTED, live=None, now=NOW, retry_in="10m")

    assert body["metadata"] == {"name": "customer-drift", "namespace": "fraud"}
    status = body["status"]
    assert set(status) == {"lastRunAt", "driftShare", "driftedFeatures", "driftedCount", "scores", "conditions"}
    assert status["driftShare"] == 0.5 and status["driftedFeatures"] == ["amount"] and status["driftedCount"] == 1
    assert status["scores"] == {"amount": 0.8, "count": 0.4}
    (condition,) = status["conditions"]
    assert condition["type"] == "Drifted" and condition["status"] == "True"
    assert condition["reason"] == "DriftDetected" and condition["observedGeneration"] == 3
    assert "DriftMonitor fraud/customer-drift" in condition["message"] and "amount" in condition["message"]
    assert condition["lastTransitionTime"] == "2026-03-01T12:00:00Z"


def test_transition_time_kept_while_status_unchanged() -> None:
    earlier = {
        "status": {"conditions": [{"type": "Drifted", "status": "True", "lastTransitionTime": "2026-02-01T00:00:00Z"}]}
    }
    body = render_status(PLAN, DRIFTED, live=earlier, now=NOW, retry_in="10m")
    assert body["status"]["conditions"][0]["lastTransitionTime"] == "2026-02-01T00:00:00Z"


def test_error_keeps_the_last_result_and_names_monitor_and_field() -> None:
    live = {
        "status": {
            "driftShare": 0.5,
            "scores": {"amount": 0.8},
            "lastRunAt": "2026-02-28T12:00:00Z",
            "observedGeneration": 3,
        }
    }
    error = DriftInputError("ReferenceUnavailable", "spec.reference.path", "/data/ref.parquet does not exist")

    body = render_status(PLAN, error, live=live, now=NOW, retry_in="10m")

    status = body["status"]
    assert status["driftShare"] == 0.5 and status["lastRunAt"] == "2026-02-28T12:00:00Z"
    assert "observedGeneration" not in status  # the operator's field
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("Unknown", "ReferenceUnavailable")
    assert condition["message"] == (
        "DriftMonitor fraud/customer-drift: spec.reference.path: /data/ref.parquet does not exist (retrying in 10m)"
    )
