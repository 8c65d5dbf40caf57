"""Dead letters of a schema id the registry did not know are replayed once it knows it, against the real stack:
the job dead-letters records of an id still unknown after its grace period; the id is registered; then
``streamguard stream replay-dead-letters`` puts them back and every window equals the reference over every
good event, the undecodable record stays in the dead-letter topic, and a second replay sends nothing."""

import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack
from streamguard.devstack.supervisor import free_port
from streamguard.jobspec import StreamJob
from streamguard.onlinestore.tenancy import store_project
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.outages import event, framed, read_dead_letters
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V1,
    V2,
    JobProcess,
    delete_topics,
    online_mismatches,
    progress,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(900)]


def test_dead_letters_of_an_id_known_later_are_replayed_once_in_order(
        stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path, private_registry: tuple[Stack, str]) -> None:
    _, registry_url = private_registry
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    project, subject = topic.replace("-", ""), f"{topic}-value"
    key_project = store_project("replay", project)
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m", trigger="1s")
    view = spec.feature_view
    port = free_port()
    config = tmp_path / "job.json"
    job_spec = StreamJob(namespace="replay", name="replay", generation=1, window=spec, view_name=view,
                         view=view_spec(spec, project), subject=subject, checkpoint_dir=str(tmp_path / "checkpoint"),
                         metrics_port=port, unknown_schema_grace_seconds=5)
    config.write_text(job_spec.model_dump_json(by_alias=True, exclude_none=True, indent=2))
    ensure_topic(stack.kafka_bootstrap, topic)
    with SchemaRegistry(registry_url) as registry:
        v1 = registry.register(subject, V1).id
    sender = TransactionSender(stack.kafka_bootstrap, registry_url, topic, V1)
    rng = random.Random(5)
    part_a = [event(rng, f"r-{i % 3}") for i in range(40)]
    part_b = [event(rng, f"r-{i % 3}") for i in range(30)]
    env = {**os.environ, **stack.env(), "STREAMGUARD_REGISTRY_URL": registry_url}
    env.pop("KUBECONFIG", None)
    job = JobProcess.for_config(config, stack, tmp_path / "job.log", port,
                                extra_env={"STREAMGUARD_REGISTRY_URL": registry_url}).start()

    def exact(events: list[dict[str, object]]) -> bool:
        return not online_mismatches(redis_client, key_project, spec, events, NAMES)

    def run_replay(store_url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "streamguard"), "stream", "replay-dead-letters",
                               "--config", str(config)], env={**env, "STREAMGUARD_REDIS_URL": store_url},
                              capture_output=True, text=True, timeout=300)

    def replay() -> str:
        result = run_replay(stack.redis_url)
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        for item in part_a:
            sender.send(item)
        sender.flush()
        wait_for(lambda: exact(part_a), 420, "part A", job, every=2)

        v2 = v1 + 1  # the id the private registry hands out next, unknown to it until registered below
        for item in part_b:
            sender.send_raw(str(item["account_id"]), framed(V2, v2, item))
        sender.send_raw("r-0", b"not an Avro record")
        sender.flush()
        letters = wait_for(lambda: len(got := read_dead_letters(stack.kafka_bootstrap, topic + ".dlq")) >= 31
                           and got, 240, "the records of the unknown id dead-lettered", job, every=3)
        reasons = {letter.reason for letter in letters}
        assert reasons == {f"schema-id-unknown:{v2}", "not-confluent-wire-format"}, reasons
        assert all(letter.timestamp_ms for letter in letters)
        wait_for(lambda: (record := progress(redis_client, key_project, view)) is not None
                 and record.state == "dead-lettering", 30, "the progress record saying dead-lettering", job)
        assert not exact(part_a + part_b)

        with SchemaRegistry(registry_url) as registry:
            assert registry.register(subject, V2).id == v2
        for away in (f"redis://:secret@127.0.0.1:{free_port()}/0", f"redis://127.0.0.1:{free_port()}/0?cluster=true"):
            refused = run_replay(away)  # a store that does not answer: a clear error, nothing sent or committed
            assert refused.returncode == 1 and "the online store" in refused.stderr, refused.stderr
            assert "nothing sent" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
            assert "secret" not in refused.stderr
        out = replay()
        assert "replayed 30 dead letters" in out and "not-confluent-wire-format: 1" in out, out
        wait_for(lambda: exact(part_a + part_b), 240, "every window after the replay", job, every=2)
        time.sleep(5)
        assert "replayed 0 dead letters" in replay()  # nothing twice
        assert exact(part_a + part_b)
        assert len({letter.origin for letter in read_dead_letters(stack.kafka_bootstrap, topic + ".dlq")}) == 31
        assert job.alive()
    finally:
        job.stop()
        delete_topics(stack.kafka_bootstrap, topic, topic + ".dlq")
