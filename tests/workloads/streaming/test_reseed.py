"""The re-seed's pure rules (replay bounds, which replayed windows are whole, Spark's offset log) and the
generation check of the job's sink against a private real Redis (flush, coverage of an earlier run)."""

import dataclasses
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
from streamguard.workloads.streaming.offsets import batch_end_offsets, late_watermark, replace_stale_state
from streamguard.workloads.streaming.panes import KEY, NEVER, PANE, SLIDE
from streamguard.workloads.streaming.plan import StreamPlan, build
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


def test_only_panes_starting_at_or_after_since_are_kept() -> None:
    since = 2 * HOUR
    columns: dict[str, list[Any]] = {
        KEY: ["A", "A", "A", "B"],
        SLIDE: [0, 2, 2, 1],
        PANE: [since, since + HOUR, since - 5 * MIN, since - MIN],
        "txn_count__n": [1, 2, 3, 4],
    }
    kept = reseed.starting_from(columns, since)
    assert kept == {KEY: ["A", "A"], SLIDE: [0, 2], PANE: [since, since + HOUR], "txn_count__n": [1, 2]}


def test_batch_end_offsets_come_from_sparks_offset_log(tmp_path: Path) -> None:
    log = tmp_path / "windows" / "offsets"
    log.mkdir(parents=True)
    metadata = {"batchWatermarkMs": 0, "batchTimestampMs": 1, "conf": {}}
    (log / "3").write_text("v1\n" + json.dumps(metadata) + "\n" + json.dumps({"t": {"1": 12, "0": 40}}))
    assert batch_end_offsets(str(tmp_path), 3, "t") == {0: 40, 1: 12}
    with pytest.raises(ValueError, match="no offsets of topic other"):
        batch_end_offsets(str(tmp_path), 3, "other")


def test_a_windows_checkpoint_of_another_state_shape_starts_anew(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    offsets = Path(plan.checkpoint_dir) / "windows" / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1\n{}\n{}")
    (Path(plan.checkpoint_dir) / "windows" / "state" / "0").mkdir(parents=True)
    (Path(plan.checkpoint_dir) / "dead-letters" / "offsets").mkdir(parents=True)
    assert replace_stale_state(plan), "a checkpoint from before pane aggregation records no state shape"
    assert not (Path(plan.checkpoint_dir) / "windows").exists()
    assert (Path(plan.checkpoint_dir) / "dead-letters" / "offsets").exists(), "the dead letters keep theirs"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1\n{}\n{}")
    assert not replace_stale_state(plan), "the same shape resumes"
    assert not replace_stale_state(plan)
    other = dataclasses.replace(plan, aggregations=plan.aggregations[:1])
    assert other.pane_shape.state_id() != plan.pane_shape.state_id()
    assert replace_stale_state(other) and not offsets.exists(), "other partial aggregates: a new state"


def test_a_batch_filters_late_events_with_the_previous_batchs_watermark(tmp_path: Path) -> None:
    log = tmp_path / "windows" / "offsets"
    log.mkdir(parents=True)
    for batch, watermark in ((0, 0), (1, 0), (2, 5_000), (7, 9_000)):
        (log / str(batch)).write_text("v1\n" + json.dumps({"batchWatermarkMs": watermark}) + "\n{}")
    assert late_watermark(str(tmp_path), 0) == 0
    assert late_watermark(str(tmp_path), 2) == 0, "batch 2 sets 5000 for evicting; it filters with batch 1's"
    assert late_watermark(str(tmp_path), 3) == 5_000
    assert late_watermark(str(tmp_path), 7) == 9_000, "no previous entry (purged): Spark uses the batch's own"


def test_the_seeder_asks_for_a_reseed_once_per_generation(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with private_redis(tmp_path / "redis") as client:
        seeder = reseed.WindowSeeder(client, plan)
        first = seeder.check(1000)
        assert first is not None, "a first start re-seeds (no stream coverage yet)"
        assert seeder.check(1000) == first, "still not seeded until the coverage is committed"
        assert seeder.commit(first, 500, replayed=False) == 500
        assert seeder.floor_ms == NEVER, "a new checkpoint's first batch wrote every pane of Spark's state"
        assert seeder.check(2000) is None
        assert read_coverage(client, plan.project, plan.view, STREAM) == Coverage(first, 500)

        restarted = reseed.WindowSeeder(client, plan)
        assert restarted.check(3000) is None, "an earlier run's coverage in the current generation holds"
        assert restarted.floor_ms == 500, "and only from its since are the store's panes known to be whole"

        client.flushall()
        second = seeder.check(4000)
        assert second is not None and second != first
        client.delete(generation_key(plan.project))  # the generation ends while the batch re-seeds
        with pytest.raises(reseed.GenerationEndedError, match=f"generation {second} ended"):
            seeder.commit(second, 900, replayed=True)
        third = seeder.check(5000)
        assert third is not None and third not in (first, second)
        assert seeder.commit(third, 900, replayed=True) == 900 and seeder.check(6000) is None
        assert seeder.floor_ms == 900


def test_the_seeder_fails_loudly_when_redis_is_away(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with private_redis(tmp_path / "redis") as client:
        port = client.connection_pool.connection_kwargs["port"]
    seeder = reseed.WindowSeeder(redis.Redis(port=port, socket_connect_timeout=1), plan)
    with pytest.raises(redis.ConnectionError):
        seeder.check(1000)
