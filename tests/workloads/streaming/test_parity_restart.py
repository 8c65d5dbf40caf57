"""Stream-batch parity, through a crash and a Kafka broker restart.

Several seeded FinServe event logs (out-of-order events, fraud bursts), each on its own accounts, share
one topic and one job. The online values must equal, for every entity and window end, both the
pure-Python oracle over ``streamguard.windows`` and the batch job's ``compute_window_features``: after
the first part, after the job is SIGKILLed mid-stream and restarted from its checkpoint, and after the
Kafka broker is restarted (a private broker, ``private_kafka``, so the shared stack is never disturbed).
"""

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack
from streamguard.onlinestore.tenancy import store_project
from streamguard.workloads.producer.events import TrafficProfile, generate
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.support import (
    ONE_OF_EACH,
    V1,
    batch_windows,
    current_windows,
    expected_windows,
    job_in,
    mismatches,
    online_mismatches,
    open_after,
    read_windows,
    stored_windows,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

SEEDS = (11, 23, 37, 58)
T0 = 1_767_229_200_000  # 2026-01-01T01:00:00Z
AGGREGATIONS = ONE_OF_EACH
NAMES = [a.name for a in AGGREGATIONS]


def event_log() -> list[dict[str, Any]]:
    """The seeds' logs merged in send order; out-of-order by up to 4 minutes (watermark: 10 minutes)."""
    emissions = []
    for seed in SEEDS:
        profile = TrafficProfile(rate=0.5, accounts=6, account_prefix=f"S{seed}-", burst_every_s=90,
                                 burst_duration_s=6, burst_rate=4, burst_accounts=1, out_of_order_fraction=0.3,
                                 out_of_order_s=240)
        emissions += list(generate(profile, seed, T0, count=110))
    emissions.sort(key=lambda e: (e.send_offset_ms, e.event["transaction_id"]))
    return [e.event for e in emissions]


@pytest.fixture
def topic(stack: Endpoints) -> Iterator[str]:
    name = f"parity-{uuid.uuid4().hex[:8]}"
    yield name
    with SchemaRegistry(stack.registry_url) as registry:
        registry.delete_subject(f"{name}-value", permanent=True)


def test_parity_over_seeds_through_kill_and_broker_restart(stack: Endpoints, redis_client: "redis.Redis",
                                                           tmp_path: Path, topic: str,
                                                           private_kafka: tuple[Stack, str]) -> None:
    kafka_stack, bootstrap = private_kafka
    project = topic.replace("-", "")
    key_project = store_project("parity", project)
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m", trigger="1s")
    events = event_log()
    cut = [int(len(events) * f) for f in (0.4, 0.6, 0.8)]
    part_a, part_b, part_c, part_d = events[: cut[0]], events[cut[0]: cut[1]], events[cut[1]: cut[2]], events[cut[2]:]
    assert sum(e["event_time"] < max(x["event_time"] for x in events[:i]) for i, e in enumerate(events) if i) > 50

    def online_equals(done: list[dict[str, Any]]) -> bool:
        return not online_mismatches(redis_client, key_project, spec, done, NAMES)

    ensure_topic(bootstrap, topic)
    sender = TransactionSender(bootstrap, stack.registry_url, topic, V1)
    for event in part_a:
        sender.send(event)
    sender.flush()
    job = job_in(tmp_path, stack, "parity", "parity", spec, view_spec(spec, project),
                 extra_env={"STREAMGUARD_KAFKA_BOOTSTRAP": bootstrap}).start()
    try:
        wait_for(lambda: online_equals(part_a), 420, "parity after the first part", job, every=3)

        def send_slowly() -> None:
            for event in part_b:
                sender.send(event)
                time.sleep(0.05)
            sender.flush()

        producer = threading.Thread(target=send_slowly)
        producer.start()
        time.sleep(1.5)
        job.kill()  # mid-stream: part B is still being produced
        producer.join()
        for event in part_c:
            sender.send(event)
        sender.flush()
        job.start()
        wait_for(lambda: online_equals(part_a + part_b + part_c), 420, "parity after the restart", job, every=3)

        kafka_stack.restart("kafka")
        after = TransactionSender(bootstrap, stack.registry_url, topic, V1)
        for event in part_d:
            after.send(event)
        after.flush()
        wait_for(lambda: online_equals(events), 420, "parity after the broker restart", job, every=3)
        assert job.alive()
    finally:
        job.stop()
    assert list((tmp_path / "checkpoint").rglob("*.changelog")), "the windows' state is in RocksDB, with a changelog"
    oracle = expected_windows(events, spec)
    current = current_windows(oracle, events, spec)
    online = read_windows(redis_client, key_project, spec, current)
    assert current and mismatches(current, online, NAMES) == []
    accounts = {e["account_id"] for e in events}  # no window that should not exist
    assert stored_windows(redis_client, key_project, spec, accounts, open_after(events, spec)) == set(current)
    assert {k[0].split("-")[0] for k in oracle} == {f"S{s}" for s in SEEDS}
    batch = batch_windows(events, spec, NAMES)
    assert set(batch) == set(oracle)
    assert mismatches({key: batch[key] for key in current}, online, NAMES) == []
