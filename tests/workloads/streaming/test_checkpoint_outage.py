"""Self-healing streams (issue 20): the job's checkpoint on the object store (``s3a://``), and that store
unavailable for 60 s, once while the job starts and once mid-stream, in one job run (the scenario, shared with
benchmarks/recovery/run.py, is ``checkpoint_outages`` in tests/workloads/streaming/outages.py).

Each outage asserts: while the store is away the StreamingWindow's ``StreamRunning`` condition is False with
``CheckpointUnavailable``, the progress record makes no progress, serving answers ``stale`` (``not_found`` before
the job's first window; never ``present``, never zeros) and its ``/readyz`` is 503; after the store's return,
with nobody stepping in, every (entity, window) equals the reference computation and serving is ``present``
with those values; the dead-letter topic holds exactly the really undecodable records; and the checkpoint
(Spark's and the job's own files) is on the object store, none of it on local disk.

The object store is a private SeaweedFS (its own run directory, so stopping it disturbs no other test); Kafka,
the registry, Redis and the kube-apiserver are the shared stack's. How fast it heals is printed here and
measured by ``benchmarks/recovery/run.py``; the test asserts exactness within the scenario's bound (5 min).
"""

import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import redis
from kubernetes import client

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.objectstore import BUCKET
from streamguard.devstack.stack import Stack
from streamguard.objectstore import Credentials, s3_filesystem
from streamguard.workloads.streaming.progress import CHECKPOINT_UNAVAILABLE
from tests.workloads.streaming.outages import HEAL_S, Observation, Scenario, checkpoint_outages
from tests.workloads.streaming.support import V1

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]


def _truthful(seen: Observation, served: set[str]) -> None:
    assert seen.condition["reason"] == CHECKPOINT_UNAVAILABLE and "unavailable" in seen.condition["message"], \
        seen.condition
    assert seen.state == "failing" and "checkpoint" in seen.reason, (seen.state, seen.reason)
    assert seen.progress_frozen, "progress advanced while the checkpoint was unavailable"
    assert set(seen.serving_statuses) <= served, seen.serving_statuses
    assert 0 not in seen.serving_values, seen.serving_values
    assert seen.readyz_status == 503, seen.view_health
    assert seen.view_health["fresh"] is False and seen.view_health["stream_state"] == "failing", seen.view_health


def test_checkpoint_store_outages_at_start_and_mid_stream_heal_to_exact_values(
        stack: Endpoints, kube_api: client.ApiClient, crds: None, redis_client: "redis.Redis", tmp_path: Path,
        private_object_store: tuple[Stack, dict[str, str]]) -> None:
    store, store_env = private_object_store
    prefix = f"checkpoints/{uuid.uuid4().hex[:10]}"
    run = Scenario(stack, kube_api, redis_client, tmp_path, stack.kafka_bootstrap, stack.registry_url, V1,
                   checkpoint=f"s3a://{BUCKET}/{prefix}")
    outcome = checkpoint_outages(run, store, store_env)
    _truthful(outcome.at_start, {"stale", "not_found"})  # the job never wrote a window yet
    _truthful(outcome.mid_stream, {"stale"})  # the last values, marked
    assert outcome.dead_letter_problems == []
    assert outcome.job_alive
    for moment, seen in (("at start", outcome.at_start), ("mid-stream", outcome.mid_stream)):
        print(f"checkpoint {moment}: exact {seen.heal_s:.1f}s, serving present {seen.serving_present_s:.1f}s after "
              f"the object store's return (goal {HEAL_S:.0f}s; restart {seen.restart_s:.1f}s not counted)")

    filesystem = s3_filesystem(Credentials.from_env(store_env))
    listed = filesystem.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
    stored = {info.path[len(f"{BUCKET}/{prefix}/"):] for info in listed}
    assert {"start.json", "windows/offsets/0", "windows/commits/0", "dead-letters/offsets/0"} <= stored, sorted(stored)
    assert not (tmp_path / "checkpoint").exists()
    log = (tmp_path / "job.log").read_text(errors="replace")
    assert store_env["AWS_SECRET_ACCESS_KEY"] not in log
