"""The operator decides from its own record, never from status a workload may write (real apiserver, Apicurio).

A StreamingWindow's job runs as ServiceAccount ``<window>-stream``, whose Role lets it patch its own window's
status. Acting as that account (impersonation), these tests forge the status fields the operator used to
decide from: the subject a ``deletionPolicy: Delete`` window deletes, and the fingerprint that says whether
the contract is registered.
"""

import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streamguard.contracts.registry import normalized
from streamguard.devstack.supervisor import free_port
from streamguard.operator import record
from streamguard.operator.render.streamingwindow import fingerprint
from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack

NAME = "customer-txn"
ACCOUNT = f"{NAME}-stream"


def as_workload(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        *args, "-n", cluster.namespace, f"--as=system:serviceaccount:{cluster.namespace}:{ACCOUNT}", check=check
    )


def can_i(cluster: Cluster, verb: str, resource: str, *flags: str) -> bool:
    answer: str = as_workload(cluster, "auth", "can-i", verb, resource, *flags, check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def forge_status(cluster: Cluster, status: dict[str, Any], annotations: dict[str, str] | None = None) -> None:
    """Patch the window's status as its workload; ``annotations`` are sent along (the apiserver drops them)."""
    body: dict[str, Any] = {"status": status}
    if annotations:
        body["metadata"] = {"annotations": annotations}
    as_workload(
        cluster, "patch", f"streamingwindow/{NAME}", "--subresource=status", "--type=merge", "-p", json.dumps(body)
    )


def versions(registry_url: str, subject: str, deleted: bool = False) -> Any:
    response = httpx.get(f"{registry_url}/subjects/{subject}/versions", params={"deleted": "true"} if deleted else None)
    return response.json() if response.status_code == 200 else response.status_code


def reconciles(operator: OperatorProcess) -> float:
    return sum(v for k, v in operator.metrics().items() if k.startswith("streamguard_operator_reconciles_total"))


def test_a_forged_status_subject_is_not_what_the_finalizer_deletes(
    start_operator: Callable[..., OperatorProcess], cluster: Cluster, registry_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    own, victim = f"t-{tag}-own-value", f"t-{tag}-victim.transactions-value"
    schema = json.dumps(manifests.TRANSACTION_SCHEMA, separators=(",", ":"))
    # Another tenant's subject that no StreamingWindow claims (e.g. written by its producers).
    assert httpx.post(f"{registry_url}/subjects/{victim}/versions", json={"schema": schema}).status_code == 200
    try:
        operator = start_operator()
        cluster.apply(manifests.feature_view(), manifests.streaming_window(subject=own, deletion_policy="Delete"))
        cluster.wait("condition=SchemaRegistered", f"streamingwindow/{NAME}")
        window = cluster.get("streamingwindow", NAME)
        kept = record.read(window)
        assert kept is not None and kept.subject == own and kept.schema_version == 1

        assert can_i(cluster, "patch", f"streamingwindows/{NAME}", "--subresource=status")
        assert not can_i(cluster, "patch", f"streamingwindows/{NAME}")
        assert not can_i(cluster, "update", f"streamingwindows/{NAME}")

        # While the operator runs, a forged subject is written over with what it recorded.
        forge_status(cluster, {"subject": victim})
        cluster.wait_for(
            lambda: cluster.get("streamingwindow", NAME)["status"]["subject"] == own,
            what="status.subject restored from the operator's record",
        )
        operator.wait_idle()
        operator.stop()

        # With the operator away: forge the subject, try to forge the record through status, then delete.
        forged = json.dumps({"uid": window["metadata"]["uid"], **record.SchemaRecord(victim, 1, 1, "0" * 64)
                             .status_fields()})
        forge_status(cluster, {"subject": victim}, {record.ANNOTATION: forged})
        window = cluster.get("streamingwindow", NAME)
        assert window["status"]["subject"] == victim, "the workload's status write landed"
        assert record.read(window) == kept, "the apiserver dropped the metadata sent to the status subresource"
        cluster.kubectl("delete", "-n", cluster.namespace, f"streamingwindow/{NAME}", "--wait=false")

        start_operator()
        cluster.wait("delete", f"streamingwindow/{NAME}", timeout=90)
        assert versions(registry_url, victim) == [1], "the forged subject survives"
        assert versions(registry_url, own) == 404, "the recorded subject is the one deleted"
        assert versions(registry_url, own, deleted=True) == [1], "softly: its version stays recoverable"
        deleted = [e["message"] for e in cluster.items("events") if e["reason"] == "SubjectDeleted"]
        assert deleted and own in deleted[0] and victim not in deleted[0]
    finally:
        for subject in (own, victim):
            httpx.delete(f"{registry_url}/subjects/{subject}")
            httpx.delete(f"{registry_url}/subjects/{subject}", params={"permanent": "true"})


def test_a_forged_fingerprint_does_not_pass_a_new_contract_for_a_registered_one(
    start_operator: Callable[..., OperatorProcess], cluster: Cluster, registry_url: str
) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-value"
    evolved = manifests.with_schema_field({"name": "merchant_id", "type": "string", "default": "unknown"})
    window = manifests.streaming_window(subject=subject, schema=evolved)
    try:
        operator = start_operator()
        cluster.apply(manifests.feature_view(), manifests.streaming_window(subject=subject))
        cluster.wait("condition=SchemaRegistered", f"streamingwindow/{NAME}")
        operator.wait_idle()
        operator.stop()

        # The workload claims the evolved contract is registered already, then the spec moves on to it while
        # the registry cannot be reached: nothing may run on a contract the registry has not accepted.
        forge_status(cluster, {"schemaFingerprint": fingerprint(normalized(window["spec"]["contract"]["schema"]))})
        cluster.apply(window)
        away = start_operator(operator_registry_url=f"http://127.0.0.1:{free_port()}")
        reconciling = cluster.wait_for(
            lambda: (c := cluster.condition("streamingwindow", NAME, "Reconciling"))
            and c["observedGeneration"] == 2 and c,
            what="the operator's verdict on generation 2",
        )
        assert (reconciling["status"], reconciling["reason"]) == ("True", "RegistryUnavailable")
        away.wait_idle()
        assert "merchant_id" not in cluster.get("configmap", f"{NAME}-stream")["data"]["job.json"]
        kept = record.read(cluster.get("streamingwindow", NAME))
        assert kept is not None and kept.schema_version == 1
        away.stop()

        start_operator()
        cluster.wait_for(
            lambda: (c := cluster.condition("streamingwindow", NAME, "SchemaRegistered"))
            and c["status"] == "True" and c["observedGeneration"] == 2,
            what="the evolved contract registered",
        )
        assert versions(registry_url, subject) == [1, 2]
        recorded = record.read(cluster.get("streamingwindow", NAME))
        assert recorded is not None and recorded.schema_version == 2
        cluster.wait_for(
            lambda: "merchant_id" in cluster.get("configmap", f"{NAME}-stream")["data"]["job.json"],
            what="the job running the registered contract",
        )
    finally:
        httpx.delete(f"{registry_url}/subjects/{subject}")
        httpx.delete(f"{registry_url}/subjects/{subject}", params={"permanent": "true"})
