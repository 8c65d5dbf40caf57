"""An incompatible contract change is refused with the registry's reason; the running job keeps its old
contract; fixing the schema recovers."""

import uuid

import httpx
import pytest

from streamguard.jobspec import StreamJob
from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack


def test_incompatible_schema_is_refused_and_the_old_contract_kept(
    operator: OperatorProcess, cluster: Cluster, registry_url: str
) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-evolving-value"
    cluster.apply(manifests.feature_view(), manifests.streaming_window(subject=subject, deletion_policy="Delete"))
    cluster.wait("condition=Ready", "streamingwindow/customer-txn")
    accepted = cluster.get("streamingwindow", "customer-txn")["status"]
    config_map = cluster.get("configmap", "customer-txn-stream")
    deployment = cluster.get("deployment", "customer-txn-stream")

    # BACKWARD: a new required field (no default) cannot read the old data.
    breaking = manifests.with_schema_field({"name": "merchant_id", "type": "string"})
    cluster.apply(manifests.streaming_window(subject=subject, deletion_policy="Delete", schema=breaking))
    refused = cluster.wait_for(
        lambda: (
            (c := cluster.condition("streamingwindow", "customer-txn", "SchemaRegistered"))
            and c["status"] == "False"
            and c["observedGeneration"] == 2
            and c
        ),
        what="SchemaRegistered=False",
    )
    assert refused["reason"] == "IncompatibleSchema"
    assert "merchant_id" in refused["message"]
    operator.wait_idle()
    window = cluster.get("streamingwindow", "customer-txn")
    conditions = {c["type"]: c for c in window["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["message"].startswith("spec.contract.schema")
    assert window["status"]["observedGeneration"] == 2
    for key in ("schemaId", "schemaVersion", "schemaFingerprint"):
        assert window["status"][key] == accepted[key]
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1]
    assert (
        cluster.get("configmap", "customer-txn-stream")["metadata"]["resourceVersion"]
        == (config_map["metadata"]["resourceVersion"])
    )
    kept = cluster.get("deployment", "customer-txn-stream")  # by generation: the controller writes its status
    assert kept["metadata"]["generation"] == deployment["metadata"]["generation"]
    assert kept["spec"]["template"] == deployment["spec"]["template"]
    job = StreamJob.model_validate_json(config_map["data"]["job.json"])
    assert "merchant_id" not in job.window.contract.schema_

    # The fix: the new field has a default, so new readers can read old data.
    compatible = manifests.with_schema_field({"name": "merchant_id", "type": "string", "default": "unknown"})
    cluster.apply(manifests.streaming_window(subject=subject, deletion_policy="Delete", schema=compatible))
    cluster.wait_for(
        lambda: (
            (c := cluster.condition("streamingwindow", "customer-txn", "SchemaRegistered"))
            and c["status"] == "True"
            and c["observedGeneration"] == 3
        ),
        what="SchemaRegistered=True",
    )
    cluster.wait("condition=Ready", "streamingwindow/customer-txn")
    status = cluster.get("streamingwindow", "customer-txn")["status"]
    assert status["schemaVersion"] == 2 and status["schemaId"] != accepted["schemaId"]
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1, 2]
    job = StreamJob.model_validate_json(cluster.get("configmap", "customer-txn-stream")["data"]["job.json"])
    assert "merchant_id" in job.window.contract.schema_
    cluster.kubectl("delete", "-n", cluster.namespace, "streamingwindow/customer-txn", "--timeout=60s")
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").status_code == 404
