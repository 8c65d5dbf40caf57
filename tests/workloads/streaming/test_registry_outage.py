"""No permanent verdict from a transient registry failure, against a real (private) Apicurio registry.

The job runs on the shared stack's Kafka and Redis but a registry of its own (a private run directory, so
stopping it disturbs no one). It starts while the registry is down; mid-stream it meets a writer schema id
the registry does not know yet (then registered within the grace period), and later a new id while the
registry is stopped. Each time: nothing is committed or dead-lettered, no progress is recorded meanwhile,
and afterwards every window equals the oracle.
"""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack
from streamguard.onlinestore.tenancy import store_project
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.outages import framed
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V1,
    V2,
    delete_topics,
    end_offsets,
    job_in,
    online_mismatches,
    progress,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

REGISTRY = "apicurio-registry"
T0 = 1_767_225_600_000
V2_NOTE = json.dumps({**json.loads(V2), "fields": [*json.loads(V2)["fields"],
                                                   {"name": "note", "type": ["null", "string"], "default": None,
                                                    "doc": "A free-text note."}]})


def _event(account: str, offset_s: int, amount: float) -> dict[str, Any]:
    return {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1", "merchant_id": "M1",
            "amount": amount, "currency": "EUR", "channel": "ECOMMERCE", "event_time": T0 + offset_s * 1000,
            "is_fraud": False, "amount_usd": amount * 1.1, "note": None}


def test_unknown_ids_and_a_registry_outage_heal_without_dead_letters(
        stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path,
        private_registry: tuple[Stack, str]) -> None:
    registry_stack, registry_url = private_registry
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    project, subject = topic.replace("-", ""), f"{topic}-value"
    key_project = store_project("outage", project)
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m", trigger="1s")
    view = spec.feature_view
    ensure_topic(stack.kafka_bootstrap, topic)
    with SchemaRegistry(registry_url) as registry:
        v1 = registry.register(subject, V1)
    sender = TransactionSender(stack.kafka_bootstrap, registry_url, topic, V1)
    part_a = [_event(f"o-{i % 3}", i * 5, float(i)) for i in range(20)]
    part_b = [_event(f"o-{i % 3}", 100 + i * 5, 2.0 * i) for i in range(10)]
    part_c = [_event(f"o-{i % 3}", 150 + i * 5, 3.0 * i) for i in range(10)]
    done: list[dict[str, Any]] = []

    def exact() -> bool:
        return not online_mismatches(redis_client, key_project, spec, done, NAMES)

    def no_dead_letters() -> bool:
        return sum(end_offsets(stack.kafka_bootstrap, topic + ".dlq").values()) == 0

    def record() -> Any:
        return progress(redis_client, key_project, view)

    for event in part_a:
        sender.send(event)
    sender.flush()
    done += part_a
    registry_stack.supervisor.stop(REGISTRY)  # 0. the registry is down when the job starts
    job = job_in(tmp_path, stack, "outage", "outage", spec, view_spec(spec, project),
                 extra_env={"STREAMGUARD_REGISTRY_URL": registry_url}).start()
    try:
        down = wait_for(lambda: (r := record()) and r.state == "failing" and "unreachable" in r.reason and r,
                        300, "the job waiting for the registry at its start", job)
        assert down.progress_at_ms is None and f"subject {subject}" in down.reason
        registry_stack.restart(REGISTRY)
        with SchemaRegistry(registry_url) as registry:
            if registry.schema_by_id(v1.id) is None:  # an in-memory registry comes back empty
                assert registry.register(subject, V1).id == v1.id
        wait_for(exact, 420, "part A", job, every=2)

        # 1. an id the registry does not know yet, registered within the grace period
        v2_id = v1.id + 1  # the id the private registry hands out next
        for event in part_b:
            sender.send_raw(event["account_id"], framed(V2, v2_id, event))
        sender.flush()
        waiting = wait_for(lambda: (r := record()) and r.state == "failing" and f"{v2_id} unknown" in r.reason
                           and r, 180, f"the job waiting for schema id {v2_id}", job)
        time.sleep(5)
        assert record().progress_at_ms == waiting.progress_at_ms  # no progress while waiting
        with SchemaRegistry(registry_url) as registry:
            assert registry.register(subject, V2).id == v2_id
        done += part_b
        wait_for(exact, 240, "part B after its schema id was registered", job, every=2)
        assert no_dead_letters()

        # 2. a new id met while the registry is stopped
        with SchemaRegistry(registry_url) as registry:
            note_id = registry.register(subject, V2_NOTE).id
        registry_stack.supervisor.stop(REGISTRY)
        for event in part_c:
            sender.send_raw(event["account_id"], framed(V2_NOTE, note_id, event))
        sender.flush()
        stalled = wait_for(lambda: (r := record()) and r.state == "failing" and "unreachable" in r.reason
                           and r, 180, "the job failing on the unreachable registry", job)
        time.sleep(10)
        assert record().progress_at_ms == stalled.progress_at_ms and no_dead_letters()
        registry_stack.restart(REGISTRY)
        with SchemaRegistry(registry_url) as registry:
            if registry.schema_by_id(note_id) is None:  # an in-memory registry comes back empty
                assert [registry.register(subject, s).id for s in (V1, V2, V2_NOTE)] == [v1.id, v2_id, note_id]
        done += part_c
        wait_for(exact, 300, "part C after the registry returned", job, every=2)
        assert no_dead_letters()
        healed = wait_for(lambda: (r := record()) and r.state == "running" and r, 120, "the job running again", job)
        assert (healed.progress_at_ms or 0) > (stalled.progress_at_ms or 0)
        assert job.alive()
    finally:
        job.stop()
        delete_topics(stack.kafka_bootstrap, topic, topic + ".dlq")
