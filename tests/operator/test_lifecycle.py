"""Create -> children + Ready; update in place; prune; delete -> garbage collection and subject cleanup."""

import json
import uuid
from typing import Any

import httpx
import pytest

from streamguard.jobspec import StreamJob
from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack

OWNED_BY = "app.kubernetes.io/managed-by=streamguard-operator"


def owner_of(obj: dict[str, Any]) -> dict[str, Any]:
    refs: list[dict[str, Any]] = obj["metadata"]["ownerReferences"]
    (ref,) = refs
    return ref


def test_create_update_prune_delete(operator: OperatorProcess, cluster: Cluster, registry_url: str) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-transactions-value"
    fv = manifests.feature_view()
    sw = manifests.streaming_window(subject=subject, deletion_policy="Delete")
    dm = manifests.drift_monitor()
    cluster.apply(fv, sw, dm)
    cluster.wait(
        "condition=Ready", "featureview/customer-txn", "streamingwindow/customer-txn", "driftmonitor/customer-drift"
    )

    view = cluster.get("featureview", "customer-txn")
    assert view["status"]["observedGeneration"] == view["metadata"]["generation"] == 1
    assert view["status"]["featureCount"] == 4 and view["status"]["entityNames"] == "customer"
    assert "finalizers" not in view["metadata"]
    window = cluster.get("streamingwindow", "customer-txn")
    assert window["metadata"]["finalizers"] == ["streamguard.dev/registry-subject"]
    assert window["status"]["subject"] == subject and window["status"]["schemaVersion"] == 1
    assert window["status"]["windowNames"] == "1m,5m"
    ready = {c["type"]: c for c in window["status"]["conditions"]}
    assert ready["SchemaRegistered"]["status"] == "True" and ready["Ready"]["observedGeneration"] == 1
    versions = httpx.get(f"{registry_url}/subjects/{subject}/versions").json()
    assert versions == [1]
    config = httpx.get(f"{registry_url}/config/{subject}").json()
    assert config.get("compatibilityLevel", config.get("compatibility")) == "BACKWARD"

    children = cluster.items("all,configmap,pvc,cronjob", OWNED_BY)
    kinds = sorted(
        f"{c['kind']}/{c['metadata']['name']}"
        for c in children
        if "ownerReferences" in c["metadata"] and owner_of(c)["apiVersion"] == "streamguard.dev/v1alpha1"
    )
    assert kinds == [
        "ConfigMap/customer-drift-drift",
        "ConfigMap/customer-txn-materialize",
        "ConfigMap/customer-txn-stream",
        "CronJob/customer-txn-materialize",
        "Deployment/customer-drift-drift",
        "Deployment/customer-txn-stream",
        "PersistentVolumeClaim/customer-txn-checkpoint",
        "Service/customer-drift-drift-metrics",
        "Service/customer-txn-stream-metrics",
    ]
    for child in children:
        if child["kind"] in ("ReplicaSet", "Pod", "Job"):
            continue
        ref = owner_of(child)
        assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
        assert child["metadata"]["labels"]["app.kubernetes.io/part-of"] == "streamguard"
    assert cluster.get("prometheusrule", "customer-drift-drift") is not None

    cron = cluster.get("cronjob", "customer-txn-materialize")
    assert cron["spec"]["schedule"] == "*/15 * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert owner_of(cron)["uid"] == view["metadata"]["uid"]
    deployment = cluster.get("deployment", "customer-txn-stream")
    job = StreamJob.model_validate_json(cluster.get("configmap", "customer-txn-stream")["data"]["job.json"])
    assert [w.length for w in job.window.windows] == ["1m", "5m"] and job.subject == subject

    assert {c["type"]: c for c in view["status"]["conditions"]}["Deprecated"]["status"] == "False"

    # Update the schedule, deprecate a feature and drop a window: children change in place (same uid), the pod
    # template rolls, the view says which feature is deprecated (a condition and a Warning event).
    cluster.apply(
        manifests.feature_view(schedule="*/5 * * * *", deprecated=("amount_sum_5m",)),
        manifests.streaming_window(subject=subject, deletion_policy="Delete", windows=(("1m", "15s"),)),
    )
    cluster.wait_for(
        lambda: cluster.get("cronjob", "customer-txn-materialize")["spec"]["schedule"] == "*/5 * * * *",
        what="schedule update",
    )
    cluster.wait_for(
        lambda: cluster.get("streamingwindow", "customer-txn")["status"].get("windowNames") == "1m",
        what="window update",
    )
    cluster.wait("condition=Ready", "streamingwindow/customer-txn", "featureview/customer-txn")
    cluster.wait("condition=Deprecated", "featureview/customer-txn")
    deprecated = {c["type"]: c for c in cluster.get("featureview", "customer-txn")["status"]["conditions"]}
    assert "spec.features[3] (amount_sum_5m)" in deprecated["Deprecated"]["message"]
    warnings = cluster.kubectl("get", "events", "-n", cluster.namespace, "--field-selector",
                               "reason=FeaturesDeprecated,involvedObject.kind=FeatureView", "-o", "name").stdout
    assert warnings.strip(), "a Warning event on the apply that deprecates a feature"
    assert cluster.get("cronjob", "customer-txn-materialize")["metadata"]["uid"] == cron["metadata"]["uid"]
    updated = cluster.get("deployment", "customer-txn-stream")
    assert updated["metadata"]["uid"] == deployment["metadata"]["uid"]
    hash_key = "streamguard.dev/config-hash"
    assert (
        updated["spec"]["template"]["metadata"]["annotations"][hash_key]
        != deployment["spec"]["template"]["metadata"]["annotations"][hash_key]
    )
    job = StreamJob.model_validate_json(cluster.get("configmap", "customer-txn-stream")["data"]["job.json"])
    assert [w.length for w in job.window.windows] == ["1m"]
    assert "5m" not in json.dumps(job.window.model_dump(by_alias=True))
    window = cluster.get("streamingwindow", "customer-txn")
    assert window["status"]["observedGeneration"] == window["metadata"]["generation"] == 2

    # The view loses its batch source: its materialization children are pruned.
    cluster.apply(manifests.feature_view(schedule="*/5 * * * *", source=False))
    cluster.wait_for(lambda: cluster.get("cronjob", "customer-txn-materialize") is None, what="CronJob pruned")
    assert cluster.get("configmap", "customer-txn-materialize") is None
    cluster.wait("condition=Ready", "featureview/customer-txn")

    # Delete: the subject goes (policy Delete), the children are garbage-collected, nothing hangs.
    cluster.kubectl(
        "delete",
        "-n",
        cluster.namespace,
        "streamingwindow/customer-txn",
        "driftmonitor/customer-drift",
        "--timeout=60s",
    )
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").status_code == 404
    cluster.wait_for(
        lambda: (
            cluster.get("deployment", "customer-txn-stream") is None
            and cluster.get("configmap", "customer-drift-drift") is None
            and cluster.get("service", "customer-txn-stream-metrics") is None
        ),
        timeout=90,
        what="garbage collection",
    )
    assert "Traceback" not in operator.log_text()


def test_retained_subject_survives_deletion(operator: OperatorProcess, cluster: Cluster, registry_url: str) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-retained-value"
    cluster.apply(manifests.feature_view(), manifests.streaming_window(subject=subject))
    cluster.wait("condition=Ready", "streamingwindow/customer-txn")
    assert "finalizers" not in cluster.get("streamingwindow", "customer-txn")["metadata"]
    cluster.kubectl("delete", "-n", cluster.namespace, "streamingwindow/customer-txn", "--timeout=30s")
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1]
    httpx.delete(f"{registry_url}/subjects/{subject}")
    httpx.delete(f"{registry_url}/subjects/{subject}", params={"permanent": "true"})
