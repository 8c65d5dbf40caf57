"""The re-seed's pure rules (replay bounds, which replayed windows are whole, Spark's offset log) and the
generation check of the job's sink against a private real Redis (flush, coverage of an earlier run)."""

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from streamguard.api.streamingwindow import Aggregation
from streamguard.devstack.private_redis import private_redis
from streamguard.jobspec import StreamJob, load
from streamguard.onlinestore.generation import STREAM, Coverage, generation_key
from streamguard.onlinestore.writers import read_coverage
from streamguard.workloads.streaming import reseed
from streamguard.workloads.streaming.offsets import batch_end_offsets
from streamguard.workloads.streaming.plan import StreamPlan, build
from streamguard.workloads.streaming.sink import END, KEY, SUFFIX
from tests.workloads.streaming.support import V1, view_spec, window_spec, write_job

MIN, HOUR = 60_000, 3_600_000
AGGREGATIONS = [Aggregation(name="txn_count", function="count"),
                Aggregation(name="amount_sum", function="sum", field="amount")]


def _plan(tmp_path: Path) -> StreamPlan:
    spec = window_spec("t", V1, AGGREGATIONS, watermark="2m")
    path = write_job(tmp_path / "job.json", "ns", "sw", spec, view_spec(spec, "proj"), tmp_path / "ck", 9999)
    return build(load(StreamJob, path))


def test_replay_reaches_back_the_longest_window_its_slide_and_the_watermark(tmp_path: Path) -> None:
    plan = _plan(tmp_path)  # longest window 1h sliding by 5m, watermark 2m
    now = 10 * HOUR
    assert reseed.replay_since(plan, now, None) == now - HOUR - 5 * MIN - 2 * MIN
    assert reseed.replay_since(plan, now, 0) == now - HOUR - 7 * MIN
    assert reseed.replay_since(plan, now, now - 30 * MIN) == now - 30 * MIN, "never before the job saw everything"


def test_replay_ranges_end_at_the_batch_and_skip_partitions_without_recent_records() -> None:
    ranges = reseed.replay_ranges({0: 5, 1: None, 2: 40}, {0: 20, 1: 7, 2: 30})
    assert ranges == {0: (5, 20), 1: (7, 7), 2: (30, 30)}


def test_only_windows_starting_at_or_after_since_are_kept(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    since = 2 * HOUR
    columns: dict[str, list[Any]] = {
        KEY: ["A", "A", "A", "B"],
        SUFFIX: ["1m", "1h", "1h", "5m"],
        END: [since + MIN, since + HOUR, since + HOUR - 5 * MIN, since + 4 * MIN],
        "txn_count": [1, 2, 3, 4],
    }
    kept = reseed.starting_from(plan, columns, since)
    assert kept == {KEY: ["A", "A"], SUFFIX: ["1m", "1h"], END: [since + MIN, since + HOUR], "txn_count": [1, 2]}


def test_batch_end_offsets_come_from_sparks_offset_log(tmp_path: Path) -> None:
    log = tmp_path / "windows" / "offsets"
    log.mkdir(parents=True)
    metadata = {"batchWatermarkMs": 0, "batchTimestampMs": 1, "conf": {}}
    (log / "3").write_text("v1\n" + json.dumps(metadata) + "\n" + json.dumps({"t": {"1": 12, "0": 40}}))
    assert batch_end_offsets(str(tmp_path), 3, "t") == {0: 40, 1: 12}
    with pytest.raises(ValueError, match="no offsets of topic other"):
        batch_end_offsets(str(tmp_path), 3, "other")


def test_the_seeder_asks_for_a_reseed_once_per_generation(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with private_redis(tmp_path / "redis") as client:
        seeder = reseed.WindowSeeder(client, plan)
        first = seeder.check(1000)
        assert first is not None, "a first start re-seeds (no stream coverage yet)"
        assert seeder.check(1000) == first, "still not seeded until the coverage is committed"
        assert seeder.commit(first, 500) == 500
        assert seeder.check(2000) is None
        assert read_coverage(client, plan.project, plan.view, STREAM) == Coverage(first, 500)

        restarted = reseed.WindowSeeder(client, plan)
        assert restarted.check(3000) is None, "an earlier run's coverage in the current generation holds"

        client.flushall()
        second = seeder.check(4000)
        assert second is not None and second != first
        client.delete(generation_key(plan.project))  # the generation ends while the batch re-seeds
        with pytest.raises(reseed.GenerationEndedError, match=f"generation {second} ended"):
            seeder.commit(second, 900)
        third = seeder.check(5000)
        assert third is not None and third not in (first, second)
        assert seeder.commit(third, 900) == 900 and seeder.check(6000) is None


def test_the_seeder_fails_loudly_when_redis_is_away(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with private_redis(tmp_path / "redis") as client:
        port = client.connection_pool.connection_kwargs["port"]
    seeder = reseed.WindowSeeder(redis.Redis(port=port, socket_connect_timeout=1), plan)
    with pytest.raises(redis.ConnectionError):
        seeder.check(1000)
