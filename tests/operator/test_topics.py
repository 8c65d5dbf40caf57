"""What the operator does about a StreamingWindow's topic (pure plan): create, grow, refuse, report missing."""

from typing import Any

from streamguard.api.streamingwindow import KafkaSource
from streamguard.operator import topics
from streamguard.operator.topics import TopicPlan, TopicState

DAY_MS = 86_400_000


def source(**fields: Any) -> KafkaSource:
    return KafkaSource.model_validate({"topic": "payments", **fields})


def test_missing_unmanaged_topic_is_reported_naming_it() -> None:
    plan = topics.plan(source(), None)
    assert not plan.changes and plan.refused is not None
    assert plan.refused.type == "TopicReady" and plan.refused.status == "False"
    assert plan.refused.reason == "TopicMissing" and "'payments'" in plan.refused.message
    assert "spec.source.partitions" in plan.refused.message


def test_missing_managed_topic_is_created_as_specified() -> None:
    plan = topics.plan(source(partitions=3, replicationFactor=1, retention="7d"), None)
    assert plan == TopicPlan(create=True, partitions=3, replication_factor=1, retention_ms=7 * DAY_MS)


def test_existing_topic_as_specified_needs_nothing() -> None:
    live = TopicState(partitions=3, replication_factor=1, retention_ms=7 * DAY_MS)
    assert topics.plan(source(partitions=3, retention="7d"), live) == TopicPlan()
    assert topics.plan(source(), live) == TopicPlan()
    cond = topics.ready("payments", live, TopicPlan())
    assert (cond.status, cond.reason) == ("True", "Exists")
    assert cond.message == "Kafka topic 'payments' has 3 partitions, retention 7d"


def test_partitions_and_retention_are_raised() -> None:
    live = TopicState(partitions=3, replication_factor=1, retention_ms=DAY_MS)
    plan = topics.plan(source(partitions=6, retention="7d"), live)
    assert plan == TopicPlan(partitions=6, retention_ms=7 * DAY_MS)


def test_lowering_partitions_is_refused_naming_the_field() -> None:
    plan = topics.plan(source(partitions=3), TopicState(partitions=6, replication_factor=1, retention_ms=-1))
    assert not plan.changes and plan.refused is not None
    assert plan.refused.reason == "PartitionDecreaseRefused"
    assert plan.refused.message.startswith("spec.source.partitions: Kafka topic 'payments' has 6 partitions")


def test_shortening_retention_is_refused() -> None:
    for live_ms in (-1, 14 * DAY_MS):
        live = TopicState(partitions=3, replication_factor=1, retention_ms=live_ms)
        plan = topics.plan(source(partitions=3, retention="7d"), live)
        assert plan.refused is not None and plan.refused.reason == "RetentionDecreaseRefused"
        assert plan.refused.message.startswith("spec.source.retention:")


def test_replication_factor_applies_at_creation_only_and_says_so() -> None:
    live = TopicState(partitions=3, replication_factor=1, retention_ms=-1)
    plan = topics.plan(source(partitions=3, replicationFactor=3), live)
    assert not plan.changes and plan.refused is None
    assert "applies only when the operator creates the topic" in topics.ready("payments", live, plan).message


def test_after_applies_the_planned_growth() -> None:
    live = TopicState(partitions=3, replication_factor=1, retention_ms=DAY_MS)
    assert topics.after(live, TopicPlan(partitions=6)) == TopicState(6, 1, DAY_MS)
    assert topics.after(live, TopicPlan(retention_ms=7 * DAY_MS)) == TopicState(3, 1, 7 * DAY_MS)
