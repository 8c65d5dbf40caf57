"""Workloads apply their own conditions with their own field managers; the operator's status writes merge
with them (conditions are a map keyed by type) and a workload's write makes the operator write nothing."""

import json

import pytest

from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack


def test_workload_conditions_survive_operator_status_writes(operator: OperatorProcess, cluster: Cluster) -> None:
    cluster.apply(manifests.feature_view())
    cluster.wait("condition=Ready", "featureview/customer-txn")
    operator.wait_idle()
    writes = operator.writes()

    fresh = {
        "apiVersion": "streamguard.dev/v1alpha1",
        "kind": "FeatureView",
        "metadata": {"name": "customer-txn", "namespace": cluster.namespace},
        "status": {
            "freshnessSeconds": 42,
            "conditions": [
                {
                    "type": "Fresh",
                    "status": "True",
                    "reason": "WithinSla",
                    "message": "42s old",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }
    cluster.kubectl(
        "apply",
        "--server-side",
        "--subresource=status",
        "--field-manager=streamguard-materializer",
        "-f",
        "-",
        input=json.dumps(fresh),
    )
    operator.wait_idle()
    assert operator.writes() == writes, "a workload's status write must not make the operator write"

    cluster.apply(manifests.feature_view(schedule="0 * * * *"))
    cluster.wait_for(
        lambda: cluster.get("featureview", "customer-txn")["status"]["observedGeneration"] == 2,
        what="operator status for generation 2",
    )
    view = cluster.get("featureview", "customer-txn")
    conditions = {c["type"]: c for c in view["status"]["conditions"]}
    assert conditions["Fresh"]["reason"] == "WithinSla" and view["status"]["freshnessSeconds"] == 42
    assert conditions["Ready"]["observedGeneration"] == 2
    shown = cluster.kubectl(
        "get", "featureview/customer-txn", "-n", cluster.namespace, "-o", "json", "--show-managed-fields"
    )
    managers = {(m["manager"], m.get("subresource")) for m in json.loads(shown.stdout)["metadata"]["managedFields"]}
    assert ("streamguard-operator", "status") in managers
    assert ("streamguard-materializer", "status") in managers
