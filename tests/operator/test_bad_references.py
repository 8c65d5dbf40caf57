"""Input the CRD schema cannot refuse (cross-object references, the Avro contract) never crashes the
operator: the object is Stalled with a message naming the field, and recovers once fixed."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack


def stalled_message(cluster: Cluster, kind: str, name: str) -> str:
    def check() -> str | None:
        cond = cluster.condition(kind, name, "Stalled")
        ready = cluster.condition(kind, name, "Ready")
        if cond and cond["status"] == "True" and ready and ready["status"] == "False":
            return str(cond["message"])
        return None

    message: str = cluster.wait_for(check, what=f"{kind}/{name} Stalled")
    return message


def test_bad_references_stall_with_the_field_named_and_recover(operator: OperatorProcess, cluster: Cluster) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-refs-value"
    cluster.apply(
        manifests.streaming_window(name="orphan", view="missing-view", subject=subject),
        manifests.drift_monitor(name="orphan-drift", view="missing-view"),
        manifests.feature_view(name="short-view", windows=("1m",)),
        manifests.streaming_window(name="undeclared", view="short-view", subject=subject),
        manifests.streaming_window(
            name="bad-avro",
            view="short-view",
            subject=subject,
            schema={"type": "record", "name": "T", "fields": [{"name": "x", "type": "int"}]},
        ),
    )
    assert stalled_message(cluster, "streamingwindow", "orphan").startswith(
        "spec.featureView: FeatureView 'missing-view' does not exist"
    )
    assert stalled_message(cluster, "driftmonitor", "orphan-drift").startswith("spec.featureView")
    message = stalled_message(cluster, "streamingwindow", "undeclared")
    assert message.startswith("spec.aggregations/spec.windows") and "amount_sum_5m" in message
    assert stalled_message(cluster, "streamingwindow", "bad-avro").startswith("spec.keyField")
    cluster.wait("condition=Ready", "featureview/short-view")
    assert cluster.get("deployment", "orphan-stream") is None
    assert cluster.get("configmap", "undeclared-stream") is None

    # The missing view appears: its dependents converge without being touched.
    cluster.apply(manifests.feature_view(name="missing-view"))
    cluster.wait("condition=Ready", "streamingwindow/orphan", "driftmonitor/orphan-drift")
    stalled = cluster.get("streamingwindow", "orphan")["status"]
    assert {c["type"]: c["status"] for c in stalled["conditions"]}["Stalled"] == "False"
    assert operator.process is not None and operator.process.poll() is None
    assert "Traceback" not in operator.log_text()


def test_deletion_never_hangs_on_a_dead_registry(
    start_operator: Callable[..., OperatorProcess], cluster: Cluster
) -> None:
    dead = "http://127.0.0.1:9/apis/ccompat/v7"
    operator = start_operator(registry_url=dead, cleanup_timeout_seconds="3")
    cluster.apply(
        manifests.feature_view(),
        manifests.streaming_window(name="stuck", subject="never-registered-value", deletion_policy="Delete"),
        manifests.streaming_window(name="escape", subject="never-registered-value", deletion_policy="Delete"),
    )
    for name in ("stuck", "escape"):

        def reconciling_of(n: str = name) -> dict[str, Any] | None:
            cond = cluster.condition("streamingwindow", n, "Reconciling")
            return cond if cond and cond["status"] == "True" else None

        reconciling = cluster.wait_for(reconciling_of, what="Reconciling")
        assert reconciling["reason"] == "RegistryUnavailable"
        assert cluster.get("streamingwindow", name)["metadata"]["finalizers"] == ["streamguard.dev/registry-subject"]
    # Escape hatch: the annotation skips the registry at once.
    cluster.kubectl("annotate", "-n", cluster.namespace, "streamingwindow/escape", "streamguard.dev/skip-cleanup=true")
    cluster.kubectl("delete", "-n", cluster.namespace, "streamingwindow/escape", "--timeout=20s")
    # Without it, the cleanup gives up after the configured timeout instead of blocking forever.
    cluster.kubectl("delete", "-n", cluster.namespace, "streamingwindow/stuck", "--timeout=40s")
    assert operator.process is not None and operator.process.poll() is None
