"""The operator's status: kstatus conditions, transition times, and 'no change -> no write'."""

from typing import Any

from streamguard.api.featureview import FeatureViewSpec
from streamguard.operator.reconcile import deprecated_condition
from streamguard.operator.status import Cond, Verdict, desired_status


def ready(fields: dict[str, Any] | None = None) -> Verdict:
    return Verdict("Ready", "ChildrenReady", "children applied: ConfigMap/a", [], fields or {"featureCount": 4})


def apply(verdict: Verdict, live: dict[str, Any] | None, generation: int = 2, ts: str = "T1") -> dict[str, Any] | None:
    return desired_status("FeatureView", "ns", "a", generation, verdict, live, timestamp=ts)


def test_ready_sets_kstatus_conditions_and_observed_generation() -> None:
    manifest = apply(ready(), None)
    assert manifest is not None
    assert manifest["apiVersion"] == "streamguard.dev/v1alpha1" and manifest["kind"] == "FeatureView"
    status = manifest["status"]
    assert status["observedGeneration"] == 2 and status["featureCount"] == 4
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Reconciling"]["status"] == "False" and conds["Stalled"]["status"] == "False"
    assert all(c["observedGeneration"] == 2 and c["lastTransitionTime"] == "T1" and c["reason"] for c in conds.values())


def test_unchanged_status_writes_nothing_even_with_foreign_conditions() -> None:
    first = apply(ready(), None)
    assert first is not None
    live = first["status"] | {
        "conditions": [*first["status"]["conditions"], {"type": "Fresh", "status": "False", "reason": "Stale"}],
        "freshnessSeconds": 999,
    }
    assert apply(ready(), live, ts="T2") is None


def test_new_generation_or_field_change_is_written_keeping_transition_times() -> None:
    first = apply(ready(), None)
    assert first is not None
    bumped = apply(ready(), first["status"], generation=3, ts="T2")
    assert bumped is not None
    assert {c["lastTransitionTime"] for c in bumped["status"]["conditions"]} == {"T1"}
    assert apply(ready({"featureCount": 5}), first["status"], ts="T2") is not None


def test_stalled_flips_ready_and_stalled_with_new_transition_time() -> None:
    first = apply(ready(), None)
    assert first is not None
    stalled = Verdict(
        "Stalled",
        "FeatureViewNotFound",
        "spec.featureView: FeatureView 'x' does not exist",
        [Cond("SchemaRegistered", "Unknown", "NotChecked")],
        {"schemaId": None},
    )
    manifest = apply(stalled, first["status"], ts="T2")
    assert manifest is not None
    conds = {c["type"]: c for c in manifest["status"]["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["lastTransitionTime"] == "T2"
    assert conds["Stalled"]["status"] == "True" and conds["Stalled"]["message"].startswith("spec.featureView")
    assert conds["Reconciling"]["lastTransitionTime"] == "T1"
    assert conds["SchemaRegistered"]["status"] == "Unknown"
    assert "schemaId" not in manifest["status"]


def test_degraded_is_not_ready_without_reconciling_or_stalled() -> None:
    first = apply(ready(), None)
    assert first is not None
    degraded = Verdict("Degraded", "TopicMissing", "Kafka topic 'x' does not exist", [], {"featureCount": 4})
    manifest = apply(degraded, first["status"], ts="T2")
    assert manifest is not None
    conds = {c["type"]: c for c in manifest["status"]["conditions"]}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "TopicMissing")
    assert (
        conds["Ready"]["message"] == "Kafka topic 'x' does not exist" and conds["Ready"]["lastTransitionTime"] == "T2"
    )
    assert conds["Reconciling"]["status"] == "False" and conds["Stalled"]["status"] == "False"


def test_deprecated_condition_names_each_deprecated_feature_by_field() -> None:
    spec = FeatureViewSpec.model_validate(
        {"entities": [{"name": "customer", "joinKey": "customer_id"}],
         "features": [{"name": "a", "dtype": "INT64"}, {"name": "b", "dtype": "INT64", "deprecated": True}]})
    cond = deprecated_condition(spec)
    assert (cond.status, cond.reason) == ("True", "FeaturesDeprecated")
    assert cond.message.startswith("spec.features[1] (b) deprecated")
    clean = spec.model_copy(update={"features": spec.features[:1]})
    assert (deprecated_condition(clean).status, deprecated_condition(clean).reason) == ("False", "NoneDeprecated")
