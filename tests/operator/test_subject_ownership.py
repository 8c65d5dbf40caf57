"""Registry subjects are owned per namespace: two namespaces, one operator each, the real apiserver and Apicurio.

The same topic and view names in two namespaces register two subjects (``<namespace>.<topic>-value``); a window
naming another namespace's subject is refused, registers nothing, and deleting it leaves the subject intact.
Deletion is a soft delete: the owner's subject stays recoverable in the registry.
"""

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from streamguard.devstack.endpoints import Endpoints
from tests.operator import manifests
from tests.operator.conftest import Cluster, Kubectl
from tests.operator.process import OperatorProcess, operator_env
from tests.workloads.streaming.support import delete_topics

pytestmark = pytest.mark.stack


@pytest.fixture
def other_namespace(kube_api: client.ApiClient, kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    kubectl(
        "patch",
        "streamingwindows",
        "--all",
        "-n",
        name,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
        check=False,
    )
    core.delete_namespace(name)


def condition(cluster: Cluster, name: str, cond_type: str) -> dict[str, Any]:
    return cluster.condition("streamingwindow", name, cond_type) or {}


def versions(registry_url: str, subject: str, deleted: bool = False) -> Any:
    response = httpx.get(f"{registry_url}/subjects/{subject}/versions", params={"deleted": "true"} if deleted else None)
    return response.json() if response.status_code == 200 else response.status_code


def test_a_subject_is_owned_by_one_namespace(
    start_operator: Callable[..., OperatorProcess],
    cluster: Cluster,
    kubectl: Kubectl,
    other_namespace: str,
    stack: Endpoints,
    registry_url: str,
    tmp_path: Path,
) -> None:
    owner_ns, other_ns = cluster.namespace, other_namespace
    other = Cluster(kubectl, other_ns)
    topic = f"own-{uuid.uuid4().hex[:8]}.transactions"
    owned, theirs = f"{owner_ns}.{topic}-value", f"{other_ns}.{topic}-value"
    start_operator()
    second = OperatorProcess(other_ns, operator_env(stack), tmp_path / "operator-other.log").start()
    try:
        cluster.apply(manifests.feature_view(), manifests.streaming_window(topic=topic, deletion_policy="Delete"))
        cluster.wait("condition=Ready", "streamingwindow/customer-txn")
        assert cluster.get("streamingwindow", "customer-txn")["status"]["subject"] == owned

        # Same view, window and topic names in the other namespace: its own subject, no collision.
        other.apply(manifests.feature_view(), manifests.streaming_window(topic=topic))
        other.wait("condition=Ready", "streamingwindow/customer-txn")
        assert other.get("streamingwindow", "customer-txn")["status"]["subject"] == theirs

        # Naming the first namespace's subject (with a compatible new schema, and Delete): refused.
        evolved = manifests.with_schema_field({"name": "mcc", "type": ["null", "string"], "default": None})
        other.apply(
            manifests.feature_view(name="thief"),
            manifests.streaming_window(
                name="thief", view="thief", topic=topic, subject=owned, schema=evolved, deletion_policy="Delete"
            ),
        )
        refused = other.wait_for(
            lambda: (
                condition(other, "thief", "SchemaRegistered").get("reason") == "SubjectOwnedElsewhere"
                and condition(other, "thief", "SchemaRegistered")
            ),
            what="SchemaRegistered=False SubjectOwnedElsewhere",
        )
        assert refused["status"] == "False"
        assert f"StreamingWindow {owner_ns}/customer-txn" in refused["message"], refused
        assert condition(other, "thief", "Stalled")["status"] == "True"
        thief = other.get("streamingwindow", "thief")
        assert thief["status"].get("subject") is None
        assert other.get("deployment", "thief-stream") is None
        assert versions(registry_url, owned) == [1], "nothing registered into the owned subject"

        # Deleting the refused window (deletionPolicy Delete) leaves the owner's subject intact.
        other.kubectl("delete", "-n", other_ns, "streamingwindow/thief", "--timeout=60s")
        assert versions(registry_url, owned) == [1]
        reasons = {
            e["reason"]
            for e in json.loads(kubectl("get", "events", "-n", other_ns, "-o", "json").stdout)["items"]
            if e["involvedObject"]["name"] == "thief"
        }
        assert "SubjectOwnedElsewhere" in reasons and "SubjectDeleted" not in reasons, reasons
        cluster.wait("condition=Ready", "streamingwindow/customer-txn")

        # The owner's own deletion soft-deletes: gone from the subject list, its version still recoverable.
        cluster.kubectl("delete", "-n", owner_ns, "streamingwindow/customer-txn", "--timeout=60s")
        assert versions(registry_url, owned) == 404
        assert versions(registry_url, owned, deleted=True) == [1]
        assert versions(registry_url, theirs) == [1]
    finally:
        second.stop()
        for subject in (owned, theirs):
            httpx.delete(f"{registry_url}/subjects/{subject}")
            httpx.delete(f"{registry_url}/subjects/{subject}", params={"permanent": "true"})
        delete_topics(stack.kafka_bootstrap, topic)
    assert "Traceback" not in second.log_text()
