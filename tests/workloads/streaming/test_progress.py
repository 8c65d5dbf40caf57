"""Pure rules of the progress record: caught up or not, lag, dead-letter rate, schema-id grace, start position."""

from pathlib import Path
from typing import Any

import pytest

from streamguard.api.streamingwindow import Aggregation
from streamguard.contracts.registry import RegistryError
from streamguard.jobspec import StreamJob, load
from streamguard.onlinestore.window_layout import (
    HEARTBEAT_PROCESSED_AT,
    PROGRESS_AT,
    STATE,
    StreamProgress,
)
from streamguard.workloads.streaming.decode import WriterSchemas
from streamguard.workloads.streaming.offsets import Start, complete_from, read_start, start_timestamp, write_start
from streamguard.workloads.streaming.plan import build
from streamguard.workloads.streaming.progress import (
    DEAD_LETTERING,
    KAFKA_UNAVAILABLE,
    TOPIC_MISSING,
    BatchReport,
    DeadLetterRate,
    ProgressTracker,
    lag,
)
from streamguard.workloads.streaming.schemas import SchemaResolver
from tests.workloads.streaming.support import V1, V3, view_spec, window_spec, write_job

T = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _progress(batch: int, end: dict[str, int], latest: dict[str, int] | None, rows: int = 10,
              second: int = 10, newest: str | None = "2026-01-01T00:00:05.000Z") -> dict[str, Any]:
    return {"runId": "r", "batchId": batch, "timestamp": f"2026-01-01T00:00:{second:02d}.000Z", "numInputRows": rows,
            "eventTime": {"max": newest, "watermark": "1970-01-01T00:00:00.000Z"} if newest else {},
            "sources": [{"endOffset": {"t": end}, "latestOffset": {"t": latest} if latest is not None else None}]}


def _tracker(max_ratio: float = 0.01) -> ProgressTracker:
    tracker = ProgressTracker(None, T - 3_720_000, DeadLetterRate(max_ratio, 60_000))
    tracker.started()
    return tracker


def test_record_round_trips_and_keeps_the_heartbeat_names() -> None:
    record = StreamProgress(processed_at_ms=T, state="running", reason="caught up", progress_at_ms=T - 5,
                            newest_event_ms=T - 900, lag=0, watermark_ms=T - 120_000, batch_id=4,
                            complete_from_ms=T - 3_720_000)
    assert StreamProgress.parse(record.mapping()) == record
    assert HEARTBEAT_PROCESSED_AT == b"processed_at_ms"
    sparse = StreamProgress(processed_at_ms=T, state="failing", reason="topic t does not exist")
    assert PROGRESS_AT not in sparse.mapping() and sparse.mapping()[STATE] == b"failing"
    assert StreamProgress.parse({}) is None
    assert StreamProgress.parse({b"processed_at_ms": b"5"}) == StreamProgress(processed_at_ms=5, state="starting")


def test_a_batch_that_reached_the_latest_offsets_is_progress_at_its_start() -> None:
    tracker = _tracker()
    tracker.on_batch(BatchReport.of(_progress(0, {"0": 10, "1": 4}, {"0": 10, "1": 4}), "t"), T + 12_000)
    record = tracker.record(T + 12_000)
    assert record.progress_at_ms == T + 10_000 and record.state == "running"
    assert record.newest_event_ms == T + 5_000 and record.watermark_ms is None and record.batch_id == 0


def test_a_rate_limited_batch_is_catching_up_and_not_progress() -> None:
    tracker = _tracker()
    tracker.on_batch(BatchReport.of(_progress(0, {"0": 10}, {"0": 500}), "t"), T + 12_000)
    tracker.on_end_offsets(T + 13_000, {0: 600}, T + 13_000)
    record = tracker.record(T + 13_000)
    assert record.progress_at_ms is None and record.state == "catching-up" and record.lag == 590


def test_a_quiet_topic_at_its_end_offsets_is_progress_at_the_check() -> None:
    tracker = _tracker()
    tracker.on_batch(BatchReport.of(_progress(3, {"0": 10}, {"0": 10}, rows=0, newest=None), "t"), T + 10_500)
    tracker.on_end_offsets(T + 40_000, {0: 10}, T + 40_001)
    assert tracker.record(T + 40_001).progress_at_ms == T + 40_000
    tracker.on_end_offsets(T + 41_000, {0: 11}, T + 41_001)  # one new record not consumed yet
    assert tracker.record(T + 41_001).progress_at_ms == T + 40_000 and tracker.lag == 1


def test_failures_and_dead_letters_never_advance_progress() -> None:
    tracker = _tracker()
    tracker.fail(TOPIC_MISSING, "topic t does not exist: waiting for it")
    tracker.on_end_offsets(T, {0: 0}, T)
    record = tracker.record(T)
    assert record.progress_at_ms is None and (record.state, record.reason) == ("failing",
                                                                               "topic t does not exist: waiting for it")
    assert tracker.condition(T) == ("False", TOPIC_MISSING, "topic t does not exist: waiting for it")

    tracker.started()
    tracker.dead_letters.add(T, 1200, {"schema-id-unknown:3": 1150, "avro-decode-failed": 14})
    tracker.on_batch(BatchReport.of(_progress(1, {"0": 10}, {"0": 10}), "t"), T + 11_000)
    record = tracker.record(T + 11_000)
    assert record.progress_at_ms is None and record.state == "dead-lettering"
    assert record.reason == ("dead-lettered 97% of 1200 records in the last minute: schema id 3 unknown to the "
                             "registry (1150)")
    assert tracker.condition(T + 11_000) == ("False", DEAD_LETTERING, record.reason)
    tracker.on_batch(BatchReport.of(_progress(2, {"0": 10}, {"0": 10}, second=20), "t"), T + 61_000)
    assert tracker.record(T + 61_000).progress_at_ms == T + 20_000  # the minute has passed


def test_dead_letters_at_or_under_the_threshold_are_healthy() -> None:
    rate = DeadLetterRate(0.01, 60_000)
    rate.add(T, 1000, {"avro-decode-failed": 10})
    assert rate.verdict(T) is None
    rate.add(T + 1, 100, {"not-confluent-wire-format": 3})
    assert rate.verdict(T + 1) == "dead-lettered 1% of 1100 records in the last minute: Avro body does not decode (10)"
    assert rate.verdict(T + 60_002) is None


def test_lag_sums_partitions_and_counts_unseen_ones() -> None:
    assert lag({0: 10, 1: 7, 2: 3}, {0: 10, 1: 5}) == 5


def test_start_position_and_retention() -> None:
    assert complete_from(1_000, 9_000, {0: (0, 50), 1: (0, None)}) == 1_000
    assert complete_from(1_000, 9_000, {0: (40, 800), 1: (0, 5)}) == 1_000  # deleted records predate the start
    assert complete_from(1_000, 9_000, {0: (40, 2_500), 1: (0, 5)}) == 2_500  # retention did not reach back
    assert complete_from(None, 9_000, {0: (40, None)}) == 9_000  # everything deleted: complete from now
    assert complete_from(None, 9_000, {0: (0, 10)}) == 0


def _plan(tmp_path: Path, offsets: str = "latest") -> Any:
    spec = window_spec("t", V1, [Aggregation(name="n", function="count")])
    spec.source.starting_offsets = offsets  # type: ignore[assignment]
    path = write_job(tmp_path / "job.json", "ns", "sw", spec, view_spec(spec, "proj"), tmp_path / "ck", 9999)
    return build(load(StreamJob, path))


def test_start_timestamp_covers_the_longest_window_and_the_watermark(tmp_path: Path) -> None:
    assert start_timestamp(_plan(tmp_path), T) == T - 3_600_000 - 120_000
    assert start_timestamp(_plan(tmp_path, "earliest"), T) is None
    write_start(str(tmp_path / "ck"), Start(T - 1, T - 2))
    assert read_start(str(tmp_path / "ck")) == Start(T - 1, T - 2)


class _Registry:
    """The registry's answers over time (a stub for the pure resolution rules)."""

    def __init__(self) -> None:
        self.known: dict[int, str] = {}
        self.down = False

    def schema_by_id(self, schema_id: int) -> str | None:
        if self.down:
            raise RegistryError("schema registry http://r unreachable: connection refused")
        return self.known.get(schema_id)


def test_unknown_ids_get_a_grace_period_and_outages_no_verdict(tmp_path: Path) -> None:
    registry, schemas, now = _Registry(), WriterSchemas(), [0.0]
    resolver = SchemaResolver(registry, _plan(tmp_path), schemas, 120, clock=lambda: now[0])  # type: ignore[arg-type]
    registry.down = True
    with pytest.raises(RegistryError):
        resolver.resolve({1})
    assert schemas.known() == []
    registry.down = False
    assert resolver.resolve({1}) == {1}
    now[0] = 100.0
    registry.known[1] = V1
    assert resolver.resolve({1}) == set() and set(schemas.readable) == {1}
    assert resolver.resolve({2}) == {2}
    now[0] = 221.0
    assert resolver.resolve({2}) == set() and schemas.unknown == {2}
    registry.known[3] = V3
    assert resolver.resolve({3}) == set() and schemas.unreadable == {3}
    registry.down = True  # asked again later: an outage changes nothing
    with pytest.raises(RegistryError):
        resolver.recheck_unknown()
    assert schemas.unknown == {2}
    registry.down = False
    assert resolver.recheck_unknown() == set()
    registry.known[2] = V1  # the registry learned it: no longer a dead letter
    assert resolver.recheck_unknown() == {2} and schemas.unknown == set() and set(schemas.readable) == {1, 2}


def test_ids_dead_lettered_as_unknown_are_decoded_once_the_registry_knows_them_again(tmp_path: Path) -> None:
    registry, schemas = _Registry(), WriterSchemas()
    resolver = SchemaResolver(registry, _plan(tmp_path), schemas, 0)  # type: ignore[arg-type]
    assert resolver.resolve({4, 5, 6}) == set() and schemas.unknown == {4, 5, 6}
    assert resolver.recheck_unknown() == set() and schemas.unknown == {4, 5, 6}
    registry.known.update({4: V1, 5: V3})  # a lost subject registered again (and an unreadable one)
    assert resolver.recheck_unknown() == {4, 5}
    assert schemas.unknown == {6} and set(schemas.readable) == {4} and schemas.unreadable == {5}
    registry.down = True
    with pytest.raises(RegistryError):
        resolver.recheck_unknown()
    assert schemas.unknown == {6}


def test_an_unreadable_topic_end_is_failing_and_no_progress() -> None:
    tracker = _tracker()
    tracker.on_batch(BatchReport.of(_progress(0, {"0": 10}, {"0": 10}), "t"), T + 11_000)
    tracker.probe_error = "cannot read the end offsets of t: broker down"
    tracker.on_batch(BatchReport.of(_progress(1, {"0": 10}, {"0": 10}, second=30), "t"), T + 31_000)
    assert tracker.record(T + 31_000).progress_at_ms == T + 10_000
    assert tracker.health(T + 31_000) == ("failing", "cannot read the end offsets of t: broker down")
    assert tracker.condition(T + 31_000) == ("False", KAFKA_UNAVAILABLE,
                                             "cannot read the end offsets of t: broker down")
    tracker.on_end_offsets(T + 40_000, {0: 10}, T + 40_000)
    assert tracker.record(T + 40_000).progress_at_ms == T + 40_000
    assert tracker.condition(T + 40_000) is None  # the broker answered again
