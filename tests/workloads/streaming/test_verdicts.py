"""A writer schema id's verdict per record (``verdicts``): the pure log, the planned offsets it is bounded by,
and the verdict real Spark gives each record with segments in place."""

import io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamguard.contracts import wire
from streamguard.devstack.endpoints import Endpoints
from streamguard.jobspec import StreamJob
from streamguard.workloads.streaming import job
from streamguard.workloads.streaming.dead_letters import REPLAY_OF_HEADER
from streamguard.workloads.streaming.decode import WriterSchemas
from streamguard.workloads.streaming.offsets import planned_ends
from streamguard.workloads.streaming.plan import build
from streamguard.workloads.streaming.verdicts import Segment, Verdict, VerdictLog, live
from tests.workloads.streaming.support import AGGREGATIONS, V2, view_spec, window_spec, write_job

READ = Verdict("readable", V2)
UNKNOWN = Verdict("unknown")


def test_a_changed_verdict_holds_below_the_planned_ends_and_the_new_one_after() -> None:
    started = VerdictLog(started_with={1: READ, 2: UNKNOWN, 3: Verdict("unreadable")})
    stamped = started.stamped({1: READ, 2: READ}, {0: 40, 1: 7})
    assert stamped.segments == (Segment(2, {0: 40, 1: 7}, UNKNOWN), Segment(3, {0: 40, 1: 7}, Verdict("unreadable")))
    assert stamped.started_with == {1: READ, 2: READ}
    again = stamped.stamped({1: READ}, {0: 90, 1: 7})  # 2 not resolved yet after a restart: its records below keep
    assert again.segments[2:] == (Segment(2, {0: 90, 1: 7}, READ),)
    assert again.stamped({1: READ}, {0: 95, 1: 7}) == VerdictLog(again.segments, {1: READ})


def test_nothing_planned_needs_no_segment() -> None:
    assert VerdictLog(started_with={2: UNKNOWN}).stamped({2: READ}, {}) == VerdictLog((), {2: READ})


def test_the_log_survives_a_restart(tmp_path: Path) -> None:
    assert VerdictLog.load(str(tmp_path)) == VerdictLog()
    log = VerdictLog((Segment(2, {0: 4}, UNKNOWN), Segment(2, {0: 9}, READ)), {2: UNKNOWN, 5: Verdict("unreadable")})
    log.save(str(tmp_path / "checkpoint"))
    assert VerdictLog.load(str(tmp_path / "checkpoint")) == log
    assert live({2: V2}, {3}, {4}) == {2: READ, 3: UNKNOWN, 4: Verdict("unreadable")}


def _offset_log(checkpoint: Path, query: str, batch: int, offsets: dict[str, int]) -> None:
    folder = checkpoint / query / "offsets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(batch)).write_text("v1\n" + json.dumps({"batchWatermarkMs": 0}) + "\n"
                                     + json.dumps({"t": offsets}) + "\n")


def test_planned_ends_are_the_highest_of_the_last_batch_of_each_query(tmp_path: Path) -> None:
    assert planned_ends(str(tmp_path), "t", ("windows", "dead-letters")) == {}
    _offset_log(tmp_path, "windows", 6, {"0": 50, "1": 3})
    _offset_log(tmp_path, "windows", 7, {"0": 60, "1": 3})
    _offset_log(tmp_path, "dead-letters", 2, {"0": 55, "1": 9})
    assert planned_ends(str(tmp_path), "t", ("windows", "dead-letters")) == {0: 60, 1: 9}


# ---- the verdicts real Spark gives -----------------------------------------------------------------------


def _record(offset: int, replayed: bool = False) -> tuple[Any, ...]:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(V2)), {
        "transaction_id": f"t{offset}", "account_id": "A1", "customer_id": "C1", "merchant_id": "M1", "amount": 1.0,
        "currency": "EUR", "channel": "ECOMMERCE", "event_time": 1_700_000_000_000, "is_fraud": False})
    headers = [(REPLAY_OF_HEADER, b"t/0/0")] if replayed else []
    return (None, wire.frame(2, body.getvalue()), "t", 0, offset, datetime.now(UTC), 0, headers)


def _errors(jars: list[str], job_file: str,
            cases: list[tuple[WriterSchemas, list[tuple[Any, ...]]]]) -> list[dict[int, str | None]]:
    """Each case's rows checked with its schemas: offset -> dead-letter reason. Runs in a process of its own:
    the Avro functions need their jar on the JVM's classpath at launch, and another test's session may own
    this process's JVM."""
    os.environ["STREAMGUARD_SPARK_JARS"] = ",".join(jars)
    spark = job.spark_session("streamguard-verdicts-test")
    try:
        plan = build(StreamJob.model_validate_json(Path(job_file).read_text()))
        frames = [job.checked(spark.createDataFrame(rows, job.KAFKA_COLUMNS), schemas, plan) for schemas, rows in cases]
        return [{r["offset"]: r["error"] for r in frame.select("offset", "error").collect()} for frame in frames]
    finally:
        spark.stop()


@pytest.mark.stack
@pytest.mark.spark
def test_each_record_gets_the_verdict_of_its_segment_or_the_live_one(stack: Endpoints, tmp_path: Path) -> None:
    spec = window_spec("t", V2, AGGREGATIONS)
    job_file = write_job(tmp_path / "job.json", "ns", "w", spec, view_spec(spec, "p"), tmp_path / "checkpoint", 0)
    rows = [_record(o) for o in range(6)]
    # held for unknown below offset 3, readable since: the old records stay dead letters, later ones count; a
    # replayed dead letter below the boundary counts (under the unknown verdict it failed its batch)
    settled = WriterSchemas(readable={2: V2}, segments=(Segment(2, {0: 3}, UNKNOWN),))
    # readable below offset 3 (decoded with the segment's schema), unknown to the registry now
    lost = WriterSchemas(unknown={2}, segments=(Segment(2, {0: 3}, READ),))
    other_partition = [(*_record(0)[:3], 1, *_record(0)[4:])]
    cases = [(settled, rows), (settled, [_record(1, replayed=True)]), (lost, rows), (settled, other_partition)]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.submit(_errors, stack.spark_jars, str(job_file), cases).result(timeout=600)
    unknown = "schema-id-unknown:2"
    assert results[0] == {0: unknown, 1: unknown, 2: unknown, 3: None, 4: None, 5: None}
    assert results[1] == {1: None}
    assert results[2] == {0: None, 1: None, 2: None, 3: unknown, 4: unknown, 5: unknown}
    assert results[3] == {0: None}, "a partition the segment does not name gets the live verdict"
