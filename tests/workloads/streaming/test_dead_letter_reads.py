"""The dead-letter query reads again only what the windows query did not prove clean, against the real stack:
while every record decodes it reads nothing from Kafka, a bad record makes it read only around that record,
and the dead letters and windows stay exact."""

import random
import uuid
from pathlib import Path

import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from streamguard.jobspec import StreamJob
from streamguard.onlinestore.tenancy import store_project
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.outages import event, read_dead_letters
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V1,
    JobProcess,
    delete_topics,
    online_mismatches,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(600)]

CHECKED = "streamguard_stream_dead_letter_checked_records_total"
REREAD = "streamguard_stream_dead_letter_reread_records_total"


def test_clean_records_are_decoded_once_and_a_bad_one_is_read_again_alone(
        stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path) -> None:
    topic = f"reads-{uuid.uuid4().hex[:8]}"
    project = topic.replace("-", "")
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m", trigger="1s")
    port = free_port()
    config = tmp_path / "job.json"
    config.write_text(StreamJob(
        namespace="reads", name="reads", generation=1, window=spec, view_name=spec.feature_view,
        view=view_spec(spec, project), subject=f"{topic}-value", checkpoint_dir=str(tmp_path / "checkpoint"),
        metrics_port=port).model_dump_json(by_alias=True, exclude_none=True, indent=2))
    ensure_topic(stack.kafka_bootstrap, topic, partitions=2)
    sender = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1)
    rng = random.Random(11)
    sent: list[dict[str, object]] = []
    job = JobProcess.for_config(config, stack, tmp_path / "job.log", port).start()

    def send(n: int) -> None:
        for _ in range(n):
            sent.append(item := event(rng, f"d-{rng.randrange(4)}"))
            sender.send(item)
        sender.flush()

    def covered(records: int) -> dict[str, float]:
        """The job's metrics once the dead-letter query's batches covered ``records`` records, and the windows
        are exact."""
        def done() -> dict[str, float] | None:
            metrics = job.metrics()
            exact = not online_mismatches(redis_client, store_project("reads", project), spec, sent, NAMES)
            return metrics if exact and metrics.get(CHECKED, 0) >= records else None
        metrics: dict[str, float] = wait_for(done, 240, f"the dead-letter query past {records} records", job, every=2)
        return metrics

    try:
        send(10)
        before = covered(10)  # the first batch of a checkpoint is read whole: its start is not logged
        for _ in range(4):  # several windows batches, each proven clean
            send(15)
            wait_for(lambda: not online_mismatches(redis_client, store_project("reads", project), spec, sent, NAMES),
                     120, "the windows", job, every=1)
        clean = covered(70)
        assert clean[CHECKED] - before[CHECKED] == 60 and clean[REREAD] == before[REREAD], (before, clean)

        sender.send_raw("d-0", b"not an Avro record")
        send(5)
        letters = wait_for(lambda: read_dead_letters(stack.kafka_bootstrap, topic + ".dlq"), 240,
                           "the dead letter", job, every=3)
        after = covered(76)
        assert [letter.reason for letter in letters] == ["not-confluent-wire-format"]
        assert after["streamguard_stream_dead_letter_events_total"] == 1
        assert 1 <= after[REREAD] - clean[REREAD] <= 6, (clean, after)  # around the bad record only
        assert job.alive()
    finally:
        job.stop()
        delete_topics(stack.kafka_bootstrap, topic, topic + ".dlq")
