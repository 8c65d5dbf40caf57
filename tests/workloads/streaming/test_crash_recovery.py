"""Recovery proven, not assumed: a job started with ``startingOffsets: latest`` is SIGKILLed mid-stream under
load and restarted, then its Kafka broker is SIGKILLed and restarted; every window must equal the
recomputation over every event sent (nothing lost, nothing counted twice), and no window may exist that
should not.

The broker is a private one (its own run directory), so killing it disturbs no other test; the registry
and Redis are the shared stack's.
"""

import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from streamguard.api.streamingwindow import Aggregation
from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack
from streamguard.onlinestore.tenancy import store_project
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.support import (
    V1,
    current_windows,
    expected_windows,
    job_in,
    online_mismatches,
    open_after,
    progress,
    stored_windows,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1500)]

AGGREGATIONS = [
    Aggregation(name="txn_count", function="count"),
    Aggregation(name="amount_sum", function="sum", field="amount"),
    Aggregation(name="amount_min", function="min", field="amount"),
    Aggregation(name="amount_max", function="max", field="amount"),
]
NAMES = [a.name for a in AGGREGATIONS]
KAFKA = "kafka"


class Load:
    """Sends live transactions (event time = now, up to 20 s out of order) at ~20/s in a thread."""

    def __init__(self, sender: TransactionSender, seed: int) -> None:
        self.sender = sender
        self.random = random.Random(seed)
        self.sent: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = int(time.time() * 1000)
                event = {"transaction_id": uuid.uuid4().hex, "account_id": f"K{self.random.randrange(8)}",
                         "customer_id": "C1", "merchant_id": "M1", "amount": round(self.random.uniform(1, 500), 2),
                         "currency": "EUR", "channel": "ECOMMERCE", "is_fraud": False,
                         "event_time": now - self.random.randrange(20_000)}
                self.sender.send(event)
                self.sent.append(event)
                time.sleep(0.05)
            self.sender.flush(120)
        except BaseException as error:  # surfaced by stop()
            self.error = error

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(180)
        if self.error is not None:
            raise self.error
        return list(self.sent)


def _kill(stack: Stack, name: str) -> None:
    """SIGKILL a stack service's whole process group: a crash, not a shutdown."""
    pid = stack.supervisor.running_pid(name)
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGKILL)


def test_sigkill_of_the_job_and_the_broker_under_load_loses_and_doubles_nothing(
        stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path,
        private_kafka: tuple[Stack, str]) -> None:
    kafka_stack, bootstrap = private_kafka
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    project = topic.replace("-", "")
    key_project = store_project("crash", project)
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m", trigger="1s")
    spec.source.starting_offsets = "latest"
    view = spec.feature_view
    ensure_topic(bootstrap, topic)
    job = job_in(tmp_path, stack, "crash", "crash", spec, view_spec(spec, project),
                 extra_env={"STREAMGUARD_KAFKA_BOOTSTRAP": bootstrap})
    sender = TransactionSender(bootstrap, stack.registry_url, topic, V1,
                               extra={"message.timeout.ms": 300_000, "retries": 1_000_000})

    def exact(events: list[dict[str, Any]]) -> bool:
        return not online_mismatches(redis_client, key_project, spec, events, NAMES)

    try:
        job.start()
        wait_for(lambda: (p := progress(redis_client, key_project, view)) and p.state == "running", 420,
                 "the job running on the empty topic", job)
        load = Load(sender, seed=7).start()
        wait_for(lambda: (p := progress(redis_client, key_project, view)) and (p.batch_id or 0) >= 3
                 and len(load.sent) > 200, 300, "a few batches under load", job)
        job.kill()  # mid-stream, mid-batch or between batches
        time.sleep(5)
        job.start()
        wait_for(lambda: (p := progress(redis_client, key_project, view)) and p.state == "running"
                 and len(load.sent) > 600, 420, "the restarted job running under load", job)
        _kill(kafka_stack, KAFKA)
        time.sleep(20)  # the producer buffers, the job fails and retries
        kafka_stack.restart(KAFKA)
        time.sleep(15)
        events = load.stop()
        wait_for(lambda: exact(events), 420, "every window exact after both crashes", job, every=3)
        expected = current_windows(expected_windows(events, spec), events, spec)  # nothing that should not be:
        accounts = {e["account_id"] for e in events}
        assert stored_windows(redis_client, key_project, spec, accounts, open_after(events, spec)) == set(expected)
        assert len(events) > 800 and job.alive()
    finally:
        job.stop()
        with SchemaRegistry(stack.registry_url) as registry:
            registry.delete_subject(f"{topic}-value", permanent=True)
