"""Conditions that tell the truth, against the real apiserver, registry and Kafka:

- Ready follows the job's StreamRunning once it has been False for longer than the grace period;
- a subject deleted from the registry behind the operator's back is registered again by the periodic resync;
- the operator creates the topic, raises its partitions, refuses to lower them;
- a missing topic it does not manage gives TopicMissing and Ready=False naming the topic.
"""

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamguard.workloads.streaming.status import FIELD_MANAGER, render_condition
from tests.operator import manifests
from tests.operator.conftest import Cluster, delete_behind_the_operators_back
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack

NAME = "customer-txn"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def conditions(cluster: Cluster) -> dict[str, dict[str, Any]]:
    window = cluster.get("streamingwindow", NAME) or {}
    return {c["type"]: c for c in (window.get("status") or {}).get("conditions") or []}


def report_stream(cluster: Cluster, status: str, reason: str, message: str) -> None:
    """Apply StreamRunning exactly as the streaming job does (its renderer, its field manager)."""
    body = render_condition(cluster.namespace, NAME, 1, status, reason, message, datetime.now(UTC))
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--subresource=status",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        input=json.dumps(body),
    )


def partitions(kafka_bootstrap: str, topic: str) -> int | None:
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    found = metadata.topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)


def test_ready_follows_stream_running_after_the_grace_period(
    start_operator: Any, cluster: Cluster, kafka_bootstrap: str
) -> None:
    operator: OperatorProcess = start_operator(stream_grace_seconds="8")
    cluster.apply(manifests.feature_view(), manifests.streaming_window(topic=unique("t-sw")))
    cluster.wait("condition=Ready", f"streamingwindow/{NAME}")

    report_stream(cluster, "False", "TopicMissing", "UnknownTopicOrPartitionException: restarting in 30s")
    assert conditions(cluster)["Ready"]["status"] == "True", "within the grace period Ready stays as it was"
    first = conditions(cluster)["StreamRunning"]["lastTransitionTime"]
    cluster.wait_for(
        lambda: cluster.get("streamingwindow", NAME)["status"].get("streamDownSince") == first,
        what="the operator noting when the stream went down",
    )
    time.sleep(1.5)  # the job restarts: its new process reports False with a fresh transition time
    report_stream(cluster, "False", "TopicMissing", "UnknownTopicOrPartitionException: restarting in 30s (2)")
    assert conditions(cluster)["StreamRunning"]["lastTransitionTime"] != first
    ready = cluster.wait_for(
        lambda: (c := conditions(cluster)["Ready"])["status"] == "False" and c["message"].endswith("(2)") and c,
        timeout=60,
        what="Ready=False after the grace period (no other event arrives)",
    )
    assert ready["reason"] == "TopicMissing"
    assert (
        ready["message"]
        == f"StreamRunning=False since {first}: UnknownTopicOrPartitionException: restarting in 30s (2)"
    )
    current = conditions(cluster)
    assert current["Reconciling"]["status"] == "False" and current["Stalled"]["status"] == "False"
    assert current["StreamRunning"]["reason"] == "TopicMissing", "the job's condition is left as the job wrote it"
    table = cluster.kubectl("get", "sw", NAME, "-n", cluster.namespace, "--no-headers", "-o", "wide").stdout
    assert " False " in f" {table} ", table
    events = cluster.items("events")
    assert any(e["reason"] == "TopicMissing" and e["type"] == "Warning" for e in events)

    report_stream(cluster, "True", "Running", "batch 42 committed")
    recovered = cluster.wait_for(
        lambda: (c := conditions(cluster)["Ready"])["status"] == "True" and c, what="Ready=True again"
    )
    assert recovered["reason"] == "ChildrenReady"
    assert "streamDownSince" not in cluster.get("streamingwindow", NAME)["status"]
    operator.wait_idle()


def test_subject_deleted_behind_the_operators_back_is_registered_again(
    start_operator: Any, cluster: Cluster, registry_url: str
) -> None:
    start_operator(resync_seconds="5")
    subject = f"{unique('t')}-value"
    cluster.apply(
        manifests.feature_view(),
        manifests.streaming_window(topic=unique("t-sw"), subject=subject, deletion_policy="Delete"),
    )
    cluster.wait("condition=Ready", f"streamingwindow/{NAME}")
    before = cluster.get("streamingwindow", NAME)["status"]
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").json() == [1]

    delete_behind_the_operators_back(registry_url, subject)

    cluster.wait_for(
        lambda: httpx.get(f"{registry_url}/subjects/{subject}/versions").status_code == 200,
        timeout=60,
        what="the subject registered again by the resync",
    )
    found = httpx.post(
        f"{registry_url}/subjects/{subject}",
        json={"schema": json.dumps(manifests.TRANSACTION_SCHEMA, separators=(",", ":")), "schemaType": "AVRO"},
    ).json()
    # Apicurio takes a subject's compatibility only once the subject exists, so the operator sets it right
    # after registering: the registry answers the versions a moment before it holds BACKWARD.
    cluster.wait_for(
        lambda: (c := httpx.get(f"{registry_url}/config/{subject}").json()).get(
            "compatibilityLevel", c.get("compatibility")) == "BACKWARD",
        timeout=30,
        what="BACKWARD set again on the subject",
    )
    status = cluster.wait_for(
        lambda: (s := cluster.get("streamingwindow", NAME)["status"])["schemaId"] == found["id"] and s,
        what="status recording what the registry now holds",
    )
    assert status["schemaVersion"] == found["version"] and status["schemaFingerprint"] == before["schemaFingerprint"]
    assert conditions(cluster)["SchemaRegistered"]["status"] == "True"
    assert any(e["reason"] == "SchemaReregistered" for e in cluster.items("events"))
    cluster.kubectl("delete", "-n", cluster.namespace, f"streamingwindow/{NAME}", "--timeout=60s")


def test_operator_creates_and_grows_the_topic_and_refuses_to_shrink_it(
    operator: OperatorProcess, cluster: Cluster, kafka_bootstrap: str
) -> None:
    topic = unique("t-managed")
    cluster.apply(manifests.feature_view(), manifests.streaming_window(topic=topic, partitions=3))
    cluster.wait("condition=Ready", f"streamingwindow/{NAME}")
    assert partitions(kafka_bootstrap, topic) == 3
    assert conditions(cluster)["TopicReady"]["message"].startswith(f"Kafka topic {topic!r} has 3 partitions")
    assert any(e["reason"] == "TopicCreated" for e in cluster.items("events"))
    assert cluster.get("streamingwindow", NAME)["status"]["topicPartitions"] == 3

    cluster.apply(manifests.streaming_window(topic=topic, partitions=6))
    cluster.wait_for(
        lambda: cluster.get("streamingwindow", NAME)["status"].get("topicPartitions") == 6, what="6 partitions"
    )
    assert partitions(kafka_bootstrap, topic) == 6
    assert conditions(cluster)["Ready"]["status"] == "True"

    cluster.apply(manifests.streaming_window(topic=topic, partitions=2))
    refused = cluster.wait_for(
        lambda: (c := conditions(cluster)["Stalled"])["status"] == "True" and c, what="lowering refused"
    )
    assert refused["reason"] == "PartitionDecreaseRefused"
    assert refused["message"].startswith(f"spec.source.partitions: Kafka topic {topic!r} has 6 partitions")
    assert conditions(cluster)["TopicReady"]["status"] == "False"
    assert partitions(kafka_bootstrap, topic) == 6
    operator.wait_idle()
    AdminClient({"bootstrap.servers": kafka_bootstrap}).delete_topics([topic])


def test_missing_topic_is_reported_by_name_until_it_exists(
    operator: OperatorProcess, cluster: Cluster, kafka_bootstrap: str
) -> None:
    topic = unique("t-missing")
    cluster.apply(manifests.feature_view(), manifests.streaming_window(topic=topic, partitions=None))
    ready = cluster.wait_for(
        lambda: (c := conditions(cluster).get("Ready")) and c["status"] == "False" and c, what="Ready=False"
    )
    assert ready["reason"] == "TopicMissing" and repr(topic) in ready["message"]
    topic_ready = conditions(cluster)["TopicReady"]
    assert (topic_ready["status"], topic_ready["reason"]) == ("False", "TopicMissing")
    assert conditions(cluster)["Stalled"]["status"] == "False"
    assert cluster.get("deployment", f"{NAME}-stream") is not None, "the job is deployed; it waits for its topic"
    assert partitions(kafka_bootstrap, topic) is None, "an unmanaged topic is never created by the operator"

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    cluster.wait("condition=Ready", f"streamingwindow/{NAME}", timeout=60)
    assert conditions(cluster)["TopicReady"]["message"].startswith(f"Kafka topic {topic!r} has 2 partitions")
    operator.wait_idle()
    admin.delete_topics([topic])


def test_topic_settings_without_partitions_are_refused_at_admission(cluster: Cluster, crds: None) -> None:
    window = manifests.streaming_window(partitions=None)
    window["spec"]["source"]["replicationFactor"] = 3
    result = cluster.kubectl("apply", "-n", cluster.namespace, "-f", "-", input=json.dumps(window), check=False)
    assert result.returncode != 0
    assert "spec.source.partitions" in result.stderr
    assert "replicationFactor and retention need partitions" in result.stderr
