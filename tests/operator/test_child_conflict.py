"""A resource never takes over an object of its child's name that it does not own (issue 16): someone who may
only create StreamGuard resources cannot capture, rewrite or (through garbage collection) delete a ConfigMap
or Service that was there before."""

from typing import Any

import pytest

from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack


def foreign(kind: str, name: str) -> dict[str, Any]:
    """An object a tenant's own tooling created, without any StreamGuard ownerReference."""
    meta = {"name": name, "labels": {"team": "payments"}}
    if kind == "ConfigMap":
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"owner": "payments"}}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": {"app": "payments"}, "ports": [{"name": "http", "port": 8080}]},
    }


def untouched(cluster: Cluster, before: dict[str, Any]) -> None:
    now = cluster.get(before["kind"].lower(), before["metadata"]["name"])
    assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "the object was written"
    assert "ownerReferences" not in now["metadata"]


def test_unowned_objects_are_not_taken_over(operator: OperatorProcess, cluster: Cluster) -> None:
    cluster.apply(foreign("ConfigMap", "customer-txn-materialize"), foreign("Service", "customer-drift-drift-metrics"))
    config_map = cluster.get("configmap", "customer-txn-materialize")
    service = cluster.get("service", "customer-drift-drift-metrics")

    cluster.apply(manifests.feature_view(), manifests.drift_monitor())
    for kind, name, child in (
        ("featureview", "customer-txn", "ConfigMap/customer-txn-materialize"),
        ("driftmonitor", "customer-drift", "Service/customer-drift-drift-metrics"),
    ):
        cluster.wait("condition=ChildConflict", f"{kind}/{name}", timeout=90)
        conflict = cluster.condition(kind, name, "ChildConflict")
        assert conflict is not None and child in conflict["message"], conflict
        ready = cluster.condition(kind, name, "Ready")
        assert ready is not None and ready["status"] == "False" and ready["reason"] == "ChildConflict"
    warnings = [e for e in cluster.items("events") if e["type"] == "Warning" and e["reason"] == "ChildConflict"]
    assert {e["involvedObject"]["name"] for e in warnings} == {"customer-txn", "customer-drift"}
    # Nothing of either resource runs beside a stranger's object: its other children are not applied either.
    assert cluster.get("cronjob", "customer-txn-materialize") is None
    assert cluster.get("deployment", "customer-drift-drift") is None
    untouched(cluster, config_map)
    untouched(cluster, service)

    # The conflict clears once the object is gone (no event tells the operator: it looks again by itself).
    cluster.kubectl(
        "delete", "-n", cluster.namespace, "configmap/customer-txn-materialize", "service/customer-drift-drift-metrics"
    )
    cluster.wait("condition=Ready", "featureview/customer-txn", "driftmonitor/customer-drift", timeout=90)
    assert cluster.condition("featureview", "customer-txn", "ChildConflict") is None
    assert cluster.condition("driftmonitor", "customer-drift", "ChildConflict") is None
    owned = cluster.get("configmap", "customer-txn-materialize")
    assert owned["metadata"]["ownerReferences"][0]["kind"] == "FeatureView"
    assert cluster.get("cronjob", "customer-txn-materialize") is not None

