"""Progress, not liveness, against the real stack: a job on a topic that does not exist yet says so and makes
no progress until the topic appears, nor while it dead-letters; a job started without a checkpoint on a topic
that already holds an hour of events serves complete windows from its first batch."""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from kubernetes import client

from streamguard.devstack.endpoints import Endpoints
from streamguard.onlinestore.tenancy import store_project
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from streamguard.workloads.streaming.offsets import batch_end_offsets
from tests.conftest import Kubectl
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V1,
    apply_window,
    batch_windows,
    current_windows,
    expected_windows,
    job_in,
    mismatches,
    online_mismatches,
    open_after,
    progress,
    read_windows,
    scratch_topic,
    stored_windows,
    stream_running,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(900)]

HOUR_MS = 3_600_000


def _event(account: str, at_ms: int, amount: float) -> dict[str, Any]:
    return {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1", "merchant_id": "M1",
            "amount": amount, "currency": "EUR", "channel": "ECOMMERCE", "event_time": at_ms, "is_fraud": False}


@pytest.fixture
def topic(stack: Endpoints) -> Iterator[str]:
    with scratch_topic(stack, "stall") as name:
        yield name


def test_missing_topic_is_topic_missing_without_progress_until_it_exists(
        stack: Endpoints, kube_api: client.ApiClient, kubectl: Kubectl, crds: None, redis_client: "redis.Redis",
        tmp_path: Path, topic: str) -> None:
    namespace, project = f"stall-{uuid.uuid4().hex[:8]}", topic.replace("-", "")
    key_project = store_project(namespace, project)
    spec = window_spec(topic, V1, AGGREGATIONS, trigger="1s")
    view = view_spec(spec, project)
    apply_window(kube_api, kubectl, namespace, spec, view)
    job = job_in(tmp_path, stack, namespace, "activity", spec, view, extra_env={"KUBECONFIG": stack.kubeconfig}).start()
    try:
        condition = wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "False"
                             and c, 300, "StreamRunning=False", job)
        assert condition["reason"] == "TopicMissing" and f"topic {topic} does not exist" in condition["message"]
        first = progress(redis_client, key_project, spec.feature_view)
        assert first is not None and first.state == "failing" and f"topic {topic} does not exist" in first.reason
        assert first.progress_at_ms is None
        later = wait_for(lambda: (p := progress(redis_client, key_project, spec.feature_view))
                         and (p.processed_at_ms or 0) > (first.processed_at_ms or 0) + 2000 and p,
                         30, "a later record", job)
        assert later.progress_at_ms is None and later.state == "failing"  # alive, but no progress

        created_ms = int(time.time() * 1000)
        ensure_topic(stack.kafka_bootstrap, topic)
        sender = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1)
        events = [_event(f"tm-{i % 3}", created_ms - 50_000 + i * 1_000, 1.5 * i) for i in range(30)]
        for event in events:
            sender.send(event)
        sender.flush()
        wait_for(lambda: not online_mismatches(redis_client, key_project, spec, events, NAMES), 300,
                 "the values after the topic appeared", job, every=2)
        resumed = wait_for(lambda: (p := progress(redis_client, key_project, spec.feature_view))
                           and p.state == "running" and (p.progress_at_ms or 0) >= created_ms and p,
                           120, "progress after the topic appeared", job)
        assert resumed.lag == 0 and resumed.newest_event_ms == max(e["event_time"] for e in events)
        running = wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "True"
                           and c, 60, "StreamRunning=True", job)
        assert running["reason"] == "Running"

        for _ in range(40):  # every record from now on undecodable: dead letters are a health signal
            sender.send_raw("tm-0", b"not an Avro record")
        sender.flush()
        dead = wait_for(lambda: (c := stream_running(kubectl, namespace, "activity"))
                        and c["reason"] == "DeadLettering" and c, 180, "StreamRunning=False DeadLettering", job)
        assert dead["status"] == "False" and "not Confluent wire format (40)" in dead["message"]
        frozen = progress(redis_client, key_project, spec.feature_view)
        assert frozen is not None and frozen.state == "dead-lettering" and frozen.reason == dead["message"]
        time.sleep(5)
        still = progress(redis_client, key_project, spec.feature_view)
        assert still is not None and still.progress_at_ms == frozen.progress_at_ms
    finally:
        job.stop()
        client.CoreV1Api(kube_api).delete_namespace(namespace)


def test_a_fresh_job_with_latest_offsets_serves_complete_hour_windows_from_its_first_batch(
        stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path, topic: str) -> None:
    project = topic.replace("-", "")
    key_project = store_project("hour", project)
    spec = window_spec(topic, V1, AGGREGATIONS, trigger="1s")
    spec.source.starting_offsets = "latest"
    now = int(time.time() * 1000)
    recent = [_event(f"hr-{i % 4}", now - 58 * 60_000 + i * 11_000, float(i % 17)) for i in range(300)]
    old = [_event(f"hr-{i % 4}", now - 3 * HOUR_MS + i * 1_000, 1000.0) for i in range(20)]
    assert max(e["event_time"] for e in recent) < now
    ensure_topic(stack.kafka_bootstrap, topic)
    sender = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "enable.idempotence": True})
    for event in old + recent:  # stamped when they happened, as a producer running all along would have
        producer.produce(topic, key=event["account_id"].encode(), value=sender.serialize(event),
                         timestamp=event["event_time"])
    assert producer.flush(60) == 0

    job = job_in(tmp_path, stack, "hour", "hour", spec, view_spec(spec, project))
    started = int(time.time() * 1000)
    job.start()
    try:
        first = wait_for(lambda: (p := progress(redis_client, key_project, spec.feature_view))
                         and p.batch_id is not None and p, 420, "the first batch", job, every=0.5)
        expected = current_windows(expected_windows(recent, spec), recent, spec)
        online = read_windows(redis_client, key_project, spec, expected)
        assert mismatches(expected, online, NAMES) == []
        # the first batch read the whole topic (a batch after it, e.g. the one Spark runs without data when the
        # watermark moved, may have ended before the first progress record was read)
        assert sum(batch_end_offsets(str(tmp_path / "checkpoint"), 0, topic).values()) == len(old) + len(recent)
        # none of the old events in a window still open
        accounts = {e["account_id"] for e in recent}
        assert stored_windows(redis_client, key_project, spec, accounts, open_after(recent, spec)) == set(expected)
        serving_end = started - started % 300_000 + 300_000  # the 1h window serving reads at the start
        hour = [k for k in expected if k[1] == "1h" and k[2] == serving_end]
        assert len(hour) == 4, hour
        assert all(online[k]["txn_count"] == expected[k]["txn_count"] > 40 for k in hour)
        batch = batch_windows(recent, spec, NAMES)
        assert mismatches({k: batch[k] for k in hour}, online, NAMES) == []  # the batch job's recomputation
        assert first.complete_from_ms is not None
        assert started - HOUR_MS - 120_000 - 60_000 < first.complete_from_ms <= min(e["event_time"] for e in recent)
    finally:
        job.stop()
