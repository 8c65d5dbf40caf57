"""Pure parts of the streaming spine: the generator, the job plan, the Redis rendering, metrics accounting."""

import json
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pytest
import redis
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import LongType, StructField, StructType
from redis.exceptions import ClusterDownError, MovedError, RedisClusterException

from streamguard.api.streamingwindow import RECORDS_PER_TRIGGER_SECOND, Aggregation, StreamingWindowSpec
from streamguard.jobspec import StreamJob, load
from streamguard.onlinestore.feast_layout import redis_key_of, serialize_entity_key
from streamguard.onlinestore.slots import hash_tag_of, key_slot
from streamguard.onlinestore.tenancy import store_project
from streamguard.windows import WindowShape
from streamguard.workloads.producer.events import TrafficProfile, events, generate
from streamguard.workloads.streaming import panes, sink
from streamguard.workloads.streaming.clean_ranges import CHECKED, CleanRanges, proof_of
from streamguard.workloads.streaming.decode import unknown_ids
from streamguard.workloads.streaming.metrics import StreamMetrics
from streamguard.workloads.streaming.offsets import reached
from streamguard.workloads.streaming.panes import KEY, NEVER, PANE, SLIDE, partial_columns
from streamguard.workloads.streaming.plan import StreamPlan, StreamSpecError, build
from streamguard.workloads.streaming.status import render_condition
from tests.workloads.streaming.support import V1, V2, view_spec, window_spec, write_job

AGGS = [Aggregation(name="txn_count", function="count"), Aggregation(name="amount_sum", function="sum", field="amount"),
        Aggregation(name="amount_max", function="max", field="amount")]


def _job(tmp_path: Path, schema: str = V1, aggs: list[Aggregation] | None = None) -> StreamJob:
    spec = window_spec("t", schema, aggs or AGGS)
    path = write_job(tmp_path / "job.json", "ns", "sw", spec, view_spec(spec, "proj"), tmp_path / "ck", 9999)
    return load(StreamJob, path)


def test_generator_is_deterministic_with_bursts_and_disorder() -> None:
    profile = TrafficProfile(rate=10, burst_every_s=20, burst_duration_s=5, burst_rate=200,
                             out_of_order_fraction=0.2, out_of_order_s=60, late_fraction=0.01, late_by_s=300)
    first = events(profile, seed=7, start_ms=1_000_000_000_000, count=2000)
    assert first == events(profile, seed=7, start_ms=1_000_000_000_000, count=2000)
    assert first != events(profile, seed=8, start_ms=1_000_000_000_000, count=2000)
    fraud = [e for e in first if e["is_fraud"]]
    assert len(fraud) > 500 and len({e["account_id"] for e in fraud}) <= 3 * 4
    times = [e["event_time"] for e in first]
    assert any(b < a for a, b in pairwise(times))
    sends = [x.send_offset_ms for x in generate(profile, 7, 0, count=2000)]
    late = [sends[i] - times[i] + 1_000_000_000_000 for i in range(len(times))]
    assert max(late) == 300_000


def test_generator_refuses_bad_profiles() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TrafficProfile(rate=0)
    with pytest.raises(ValueError, match="late_fraction"):
        TrafficProfile(late_fraction=2)


def test_plan_resolves_defaults(tmp_path: Path) -> None:
    plan = build(_job(tmp_path))
    assert [(w.suffix, w.length_ms, w.slide_ms, w.count) for w in plan.windows] == [
        ("1m", 60_000, 15_000, 4), ("5m", 300_000, 60_000, 5), ("1h", 3_600_000, 300_000, 12)]
    assert plan.dead_letter_topic == "t.dlq" and plan.subject == "t-value"
    assert plan.join_key == "account_id" and plan.watermark_ms == 120_000
    assert plan.project == store_project("ns", "proj") == "proj_ns"


@pytest.mark.parametrize(
    ("aggs", "message"),
    [
        ([Aggregation(name="x", function="sum", field="nope")], r"spec.aggregations\[0\].field: 'nope' is not a field"),
        ([Aggregation(name="x", function="max", field="currency")],
         r"spec.aggregations\[0\].field: 'currency' is string, not numeric"),
    ],
)
def test_plan_errors_name_the_resource_and_field(tmp_path: Path, aggs: list[Aggregation], message: str) -> None:
    with pytest.raises(StreamSpecError, match=rf"StreamingWindow ns/sw: {message}"):
        build(_job(tmp_path, aggs=aggs))


def test_plan_refuses_a_non_timestamp_event_time(tmp_path: Path) -> None:
    schema = json.loads(V1)
    for field in schema["fields"]:
        if field["name"] == "event_time":
            field["type"] = "string"
    with pytest.raises(StreamSpecError, match=r"spec\.eventTimeField: 'event_time' must be a long"):
        build(_job(tmp_path, schema=json.dumps(schema)))


def test_plan_accepts_fields_of_v2_only(tmp_path: Path) -> None:
    plan = build(_job(tmp_path, V2, [Aggregation(name="amount_sum_v2", function="sum", field="amount_usd")]))
    assert plan.aggregations[0].field == "amount_usd"
    assert "account_id" in plan.required_fields and "amount_usd" not in plan.required_fields


def test_plan_caps_a_batch_at_records_per_trigger_second_unless_the_spec_sets_it(tmp_path: Path) -> None:
    def plan(trigger: str, cap: int | None = None) -> StreamPlan:
        spec = window_spec("t", V1, AGGS, trigger=trigger)
        spec.source.max_offsets_per_trigger = cap
        path = write_job(tmp_path / "job.json", "ns", "sw", spec, view_spec(spec, "proj"), tmp_path / "ck", 9999)
        return build(load(StreamJob, path))

    assert StreamingWindowSpec.model_fields["trigger_interval"].default == "1s"
    assert plan("1s").max_offsets_per_trigger == RECORDS_PER_TRIGGER_SECOND == 200_000
    assert plan("5s").max_offsets_per_trigger == 1_000_000
    assert plan("0s").max_offsets_per_trigger == 200_000, "back-to-back batches are capped at one second's worth"
    assert plan("5s", cap=1_000).max_offsets_per_trigger == 1_000


def test_a_store_failure_is_known_on_the_driver_and_from_an_executors_error_text(tmp_path: Path) -> None:
    oom = "OOM command not allowed when used memory > 'maxmemory'"
    assert sink.store_failure(redis.OutOfMemoryError(oom)) == (sink.FULL, oom)
    assert sink.store_failure(redis.TimeoutError("Timeout reading")) == (sink.AWAY, "Timeout reading")
    for cluster_down in (ClusterDownError("The cluster is down"), RedisClusterException("no node answered"),  # type: ignore[no-untyped-call]
                         MovedError("3999 127.0.0.1:7002")):  # a Redis Cluster still failing over after the retries
        assert sink.store_failure(cluster_down) == (sink.AWAY, str(cluster_down))
    assert sink.store_failure(RuntimeError("java.lang.OutOfMemoryError: Java heap space")) is None
    batch = pa.RecordBatch.from_pydict({KEY: ["A1"], SLIDE: [0], PANE: [60_000], "txn_count__n": [1],
                                        "amount_sum__s": [1.0], "amount_max__m": [1.0]})
    # a refused connection, as a Python worker would meet it: one server's client connects on first use, a
    # cluster's reads the slot table when it is made (a worker started while no node answers)
    for url in ("redis://127.0.0.1:1", "redis://127.0.0.1:1/0?cluster=true"):
        with pytest.raises(RuntimeError) as raised:
            list(sink.write_batches(build(_job(tmp_path)), url, 0, NEVER, iter([batch])))
        seen_by_driver = RuntimeError(f"An exception was thrown from the Python worker.\nTraceback ...\n"
                                      f"{raised.value}\n")
        failure = sink.store_failure(seen_by_driver)
        assert failure is not None and failure[0] == sink.AWAY and "127.0.0.1:1" in failure[1], (url, failure)


def test_an_empty_partition_counts_zero_in_the_written_schema_without_a_round_trip(tmp_path: Path) -> None:
    (counted,) = sink.write_batches(build(_job(tmp_path)), "redis://127.0.0.1:1", 0, NEVER, iter([]))
    assert counted.schema == sink.WRITTEN and counted.to_pydict() == {"written": [0], "missed": [0]}
    assert from_arrow_schema(sink.WRITTEN) == StructType([StructField("written", LongType()),
                                                          StructField("missed", LongType())])


def test_panes_render_one_hash_per_entity_with_the_partials_of_each_changed_pane(tmp_path: Path) -> None:
    plan = build(_job(tmp_path))
    assert plan.slides == (15_000, 60_000, 300_000) and plan.longest(300_000) == 3_600_000
    assert [name for name, _, _ in partial_columns(plan)] == ["txn_count__n", "amount_sum__s", "amount_max__m"]
    entities = list(panes.render(plan, {
        KEY: ["A1", "A2", "A1"], SLIDE: [0, 0, 2], PANE: [60_000, 60_000, 0],
        "txn_count__n": [2, 1, 3], "amount_sum__s": [5.5, None, 7.0], "amount_max__m": [3.25, None, 4.0],
    }))
    assert [e.key for e in entities] == [
        f"sgp:proj_ns:account-realtime:{plan.pane_shape.state_id()}:".encode()
        + hash_tag_of(redis_key_of(serialize_entity_key({"account_id": a}), b"proj_ns"))
        + serialize_entity_key({"account_id": a}) + b":" for a in ("A1", "A2")]
    assert [key_slot(e.key) for e in entities] == [
        key_slot(redis_key_of(serialize_entity_key({"account_id": a}), b"proj_ns")) for a in ("A1", "A2")
    ], "an entity's panes share the slot of its Feast hash"
    assert entities[0].panes == ((b"1:60000", b"2,5.5,3.25"), (b"3:0", b"3,7.0,4.0"))
    assert entities[1].panes == ((b"1:60000", b"1,,"),), "a null partial is empty"


def test_metrics_count_each_progress_once() -> None:
    metrics = StreamMetrics("ns", "sw", "view")
    progress = {"runId": "r", "batchId": 3, "timestamp": "2026-01-01T00:00:10.000Z", "inputRowsPerSecond": 5.0,
                "processedRowsPerSecond": 50.0, "durationMs": {"triggerExecution": 1200},
                "eventTime": {"max": "2026-01-01T00:00:05.000Z", "watermark": "2026-01-01T00:00:00.000Z"},
                "stateOperators": [{"numRowsDroppedByWatermark": 6}]}
    assert metrics.observe(progress, now=1767225610.0)
    assert not metrics.observe(progress)
    assert metrics.late_dropped._value.get() == 6
    assert metrics.event_time_lag._value.get() == pytest.approx(5.0)
    assert metrics.last_watermark_ms == 1767225600000


def test_unknown_schema_ids_are_read_from_the_error_text() -> None:
    text = "Job aborted ... [USER_RAISED_EXCEPTION] streamguard-unknown-schema-id:42 SQLSTATE ... id:7"
    assert unknown_ids(text) == {42}


def test_condition_render_carries_only_stream_running() -> None:
    from datetime import UTC, datetime

    body = render_condition("ns", "sw", 3, "True", "Running", "ok", datetime(2026, 1, 1, tzinfo=UTC))
    assert body["status"] == {"conditions": [{"type": "StreamRunning", "status": "True", "reason": "Running",
                                              "message": "ok", "observedGeneration": 3,
                                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}


def test_oracle_window_ends_match_the_shared_semantics() -> None:
    shape = WindowShape.parse("1m", "15s")
    assert list(shape.ends_containing(75_000)) == [90_000, 105_000, 120_000, 135_000]


def test_stream_command_reports_bad_config_without_starting_spark(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streamguard.workloads.streaming.cli import command

    missing = CliRunner().invoke(command, ["--config", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "nope.json not found (is the ConfigMap mounted?)" in missing.output
    spec = window_spec("t", V1, [Aggregation(name="x", function="sum", field="amount_usd")])
    bad = write_job(tmp_path / "job.json", "ns", "sw", spec, view_spec(spec, "proj"), tmp_path / "ck", 9999)
    refused = CliRunner().invoke(command, ["--config", str(bad)])
    assert refused.exit_code == 1
    assert "StreamingWindow ns/sw: spec.aggregations[0].field: 'amount_usd' is not a field" in refused.output


def test_both_commands_of_a_job_file_name_the_environment_they_miss(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's command and the dead-letter replay read the job file and the endpoints alike."""
    from click.testing import CliRunner

    from streamguard.workloads.streaming.cli import command as stream
    from streamguard.workloads.streaming.stream_cli import command as operate

    spec = window_spec("t", V1, [Aggregation(name="n", function="count")])
    config = write_job(tmp_path / "job.json", "ns", "sw", spec, view_spec(spec, "proj"), tmp_path / "ck", 9999)
    monkeypatch.setenv("STREAMGUARD_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.delenv("STREAMGUARD_REGISTRY_URL", raising=False)
    monkeypatch.delenv("STREAMGUARD_REDIS_URL", raising=False)
    for command, args in ((stream, []), (operate, ["replay-dead-letters"])):
        refused = CliRunner().invoke(command, [*args, "--config", str(config)])
        assert refused.exit_code == 1, refused.output
        assert ("StreamingWindow ns/sw: missing environment STREAMGUARD_REGISTRY_URL, STREAMGUARD_REDIS_URL"
                in refused.output)


def test_without_an_apiserver_the_condition_is_logged_once_per_change(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from streamguard.workloads.streaming.status import ConditionReporter

    monkeypatch.delenv("KUBECONFIG", raising=False)
    reporter = ConditionReporter("ns", "sw", 1)
    with caplog.at_level("INFO", logger="streamguard.workloads.streaming.status"):
        for _ in range(3):
            assert not reporter.report("False", "StoreFull", "Redis refused a write (OOM ...)")
        reporter.report("True", "Running", "consuming t")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("StreamRunning=")]
    assert lines == ["StreamRunning=False StoreFull: Redis refused a write (OOM ...)",
                     "StreamRunning=True Running: consuming t"]


def test_a_dead_letter_batch_goes_once_the_windows_query_wrote_what_it_reads_and_planned() -> None:
    written = {0: 10, 1: 5}
    assert reached(written, {0: 10, 1: 5}, {0: 8})
    assert not reached(written, {0: 11})  # the dead-letter batch reads past what the windows wrote
    assert not reached(written, {0: 10}, {1: 6})  # the windows query planned a batch it has not written
    assert not reached(written, {2: 1})  # a partition the windows query has not written at all
    assert reached({}, {})


def _report(start: dict[str, int] | None, end: dict[str, int], bad: int | None) -> dict[str, object]:
    source = {"startOffset": None if start is None else {"t": start}, "endOffset": {"t": end}}
    return {"sources": [source], **({} if bad is None else {"observedMetrics": {CHECKED: {"records": 9, "bad": bad}}})}


def test_the_dead_letter_query_reads_only_what_no_clean_windows_batch_covered() -> None:
    clean = CleanRanges()
    for report in (_report({"0": 0, "1": 0}, {"0": 10, "1": 4}, 0), _report({"0": 10, "1": 4}, {"0": 20, "1": 9}, 2),
                   _report({"0": 20, "1": 9}, {"0": 30, "1": 12}, 0)):
        proof = proof_of(report, "t")
        assert proof is not None
        clean.add(*proof)
    assert clean.seen == {0: 30, 1: 12}
    assert clean.unproven({0: (0, 10), 1: (0, 4)}) == {}  # proven whole: nothing is read
    assert clean.unproven({0: (5, 30), 1: (2, 12)}) == {0: (10, 20), 1: (4, 9)}  # the batch with bad records
    assert clean.unproven({0: (25, 40)}) == {0: (30, 40)}  # past every report: read
    assert proof_of(_report(None, {"0": 10}, 0), "t") is None  # a checkpoint's first batch has no start
    assert proof_of(_report({"0": 0}, {"0": 10}, None), "t") is None  # no counts, no proof
    assert proof_of(_report({"0": 0}, {"0": 10}, 1), "t") == ({0: 0}, {0: 10}, False)
    clean.add({0: 30}, {0: 35, 2: 3}, True)  # a partition new to the windows query: seen, not proven
    assert clean.unproven({2: (0, 3)}) == {2: (0, 3)} and clean.seen[2] == 3
    clean.forget_below({0: 25, 1: 12})
    assert clean.unproven({0: (25, 35), 1: (12, 13)}) == {1: (12, 13)}
    assert clean.unproven({0: (0, 35)}) == {0: (0, 25)}  # below what was handled: forgotten
