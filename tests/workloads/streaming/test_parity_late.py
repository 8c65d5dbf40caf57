"""Stream-batch parity with late and out-of-order events, read at instants during the stream, with the online
store on one Redis server and on a 3-master Redis Cluster.

A virtual clock runs through four instants ``t1..t4``. Each phase sends the events that arrive between
two instants, in arrival order: on-time events, out-of-order events (up to 2.5 s late, inside the 3 s
watermark), and from the second phase on *stragglers*, sent first in their phase, whose event time is
behind the watermark (newest event time - 3 s). After each phase the job has processed everything sent,
and the test reads what serving reads at ``t_i``: the window containing ``t_i``
(``end = floor(t_i / S) * S + S``) of every account and window size. The training set read at the same
instants (``window_features_as_of``, point-in-time as Feast reads it) must equal it per (account, window).

What the batch side can and cannot know:

* **Serving vs training at ``t``.** The window serving reads at ``t`` contains ``t`` and so ends after
  it; the watermark never exceeds the newest event time - 3 s < ``t``, so that window was never closed
  and no straggler was dropped from it. Serving at ``t`` therefore holds exactly the events with
  ``end - W <= ts < t`` *that had arrived by t*, and a training set over those events is equal. A
  training set over the complete log (the offline job's case) also counts the events that happened
  before ``t`` but arrived after it, which serving could not have seen; events alone do not say when
  they arrived. The test asserts that the difference is exactly those events.
* **Closed windows.** The stream leaves an event out of every window the watermark had closed when the
  event was processed (``end <= watermark``); Spark filters the late rows of a micro-batch with the
  watermark of the batch before it (docs/semantics.md, "The time rule"). The batch side models that exactly when it is
  told the watermark each event was filtered with (``compute_window_features(watermark_field=...)``).
  Here the test makes it known: before each phase it waits until a batch carrying the phase's watermark
  (the newest event time of the earlier phases - 3 s) has been planned (the checkpoint's offset log).
  The third phase is sent while the job is stopped, so it is one batch after the restart: a straggler
  sent after the events that advance the watermark in that same batch is still counted in the windows
  the batch closes; the same straggler sent again after a batch carrying the new watermark is dropped
  from them and counted only in windows the watermark has not reached.
"""

import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from streamguard.api.streamingwindow import StreamingWindowSpec, Window
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from streamguard.onlinestore.client import Store
from streamguard.onlinestore.tenancy import store_project
from streamguard.windows import WindowShape, aggregate, empty_value
from streamguard.workloads.batch.session import local_session
from streamguard.workloads.batch.windows import compute_window_features, window_features_as_of
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.support import (
    ONE_OF_EACH,
    V1,
    JobProcess,
    Key,
    expected_windows,
    read_windows,
    same,
    scratch_topic,
    view_spec,
    wait_for,
    window_spec,
    write_job,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

T0 = 1_767_229_200_000  # 2026-01-01T01:00:00Z
DELAY = 3_000
INSTANTS = (T0 + 5_300, T0 + 10_000, T0 + 15_999, T0 + 21_500)
"""Serving reads; T0 + 10 s is a boundary of both window sizes."""
STOPPED_PHASE = 2
"""Index of the phase sent while the job is stopped (one batch when it restarts)."""
LATE_TS = T0 + 5_000
"""Event time of the straggler sent last in the stopped phase and again first in the next one."""
LATE_FIRST, LATE_AGAIN = "late-in-the-advancing-batch", "late-after-it"
ACCOUNTS = tuple(f"L{i}" for i in range(4))
WINDOWS = [Window(name="10s", length="10s", slide="2s"), Window(name="4s", length="4s", slide="1s")]
AGGREGATIONS = ONE_OF_EACH
NAMES = [a.name for a in AGGREGATIONS]
Values = dict[str, Any]


def _event(rng: random.Random, account: str, ts: int, tid: str | None = None) -> dict[str, Any]:
    return {"transaction_id": tid or str(uuid.UUID(int=rng.getrandbits(128))), "account_id": account,
            "customer_id": "C-" + account, "merchant_id": "M-1", "amount": round(rng.uniform(1, 500), 2),
            "currency": "EUR", "channel": "ECOMMERCE", "event_time": ts, "is_fraud": False}


def phases(seed: int = 7) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Per phase: the stragglers (flushed before anything else of the phase is sent), then the rest in
    arrival order. The stopped phase ends with a straggler sent after the events that advance the
    watermark; the next phase starts with the same straggler again."""
    rng = random.Random(seed)
    out = []
    for i, (start, end) in enumerate(pairwise((T0, *INSTANTS))):
        watermark = start - 1 - DELAY  # each phase's newest event is at its instant - 1 ms
        stragglers = [_event(rng, rng.choice(ACCOUNTS), watermark - rng.randint(1, 2_500)) for _ in range(3) if i]
        if i == STOPPED_PHASE + 1:
            stragglers.insert(0, _event(rng, ACCOUNTS[0], LATE_TS, LATE_AGAIN))
        arrivals: list[tuple[int, dict[str, Any]]] = []
        for _ in range(14):
            at = rng.randrange(start, end - 1)
            late = rng.randint(1, 2_500) if rng.random() < 0.35 else 0  # inside the watermark
            arrivals.append((at, _event(rng, rng.choice(ACCOUNTS), at - late)))
        for boundary in range(start - start % 1_000 + 1_000, end - 1, 2_000):  # on window boundaries
            arrivals.append((boundary, _event(rng, rng.choice(ACCOUNTS), boundary)))
        arrivals.append((start, _event(rng, ACCOUNTS[1], start)))  # at exactly the previous instant
        arrivals.append((end - 1, _event(rng, ACCOUNTS[2], end - 1)))  # the phase's newest event time
        rest = [e for _, e in sorted(arrivals, key=lambda p: p[0])]
        if i == STOPPED_PHASE:
            rest.append(_event(rng, ACCOUNTS[0], LATE_TS, LATE_FIRST))
        out.append((stragglers, rest))
    return out


def watermarks(log: Sequence[Sequence[dict[str, Any]]]) -> list[int | None]:
    """The watermark each phase's events meet: the newest event time of the earlier phases - delay."""
    out: list[int | None] = []
    newest: int | None = None
    for phase in log:
        out.append(None if newest is None else newest - DELAY)
        newest = max([newest or 0, *(e["event_time"] for e in phase)])
    return out


def planned_watermark(checkpoint: Path) -> int:
    """``batchWatermarkMs`` of the newest micro-batch the windows query has planned (its offset log)."""
    offsets = checkpoint / "windows" / "offsets"
    batches = [int(p.name) for p in offsets.glob("[0-9]*")] if offsets.exists() else []
    if not batches:
        return 0
    metadata = (offsets / str(max(batches))).read_text().splitlines()[1]
    return int(json.loads(metadata)["batchWatermarkMs"])


def spec_for(topic: str) -> StreamingWindowSpec:
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="3s", trigger="1s")
    return spec.model_copy(update={"windows": WINDOWS})


def shapes(spec: StreamingWindowSpec) -> dict[str, WindowShape]:
    return {w.suffix: WindowShape.parse(w.length, w.slide) for w in spec.windows}


def empty() -> Values:
    return {a.name: empty_value(a.function) for a in AGGREGATIONS}


def differences(expected: dict[Key, Values | None], got: dict[Key, Values | None]) -> list[str]:
    out = []
    for key, values in expected.items():
        have = got.get(key)
        if values is None or have is None:
            if values != have:
                out.append(f"{key}: expected {values}, got {have}")
            continue
        out += [f"{key}.{n}: expected {values[n]!r}, got {have.get(n)!r}"
                for n in NAMES if not same(values[n], have.get(n))]
    return out


def _frame(spark: SparkSession, events: Sequence[dict[str, Any]], closed: dict[str, int | None]) -> DataFrame:
    rows = [(e["account_id"], e["event_time"], e["amount"], closed.get(e["transaction_id"])) for e in events]
    return spark.createDataFrame(rows, "account_id string, event_time long, amount double, watermark_ms long")


def training_at(spark: SparkSession, spec: StreamingWindowSpec,
                sets: Mapping[str, tuple[Sequence[dict[str, Any]], int]]) -> dict[tuple[str, str, str], Values]:
    """``(set, account, window suffix) -> values``: the training table of each set's events (one Spark
    run, the sets' accounts kept apart), read point-in-time as Feast reads it at the set's instant."""
    events = [{**e, "account_id": f"{name}|{e['account_id']}"} for name, (group, _) in sets.items() for e in group]
    table: pd.DataFrame = window_features_as_of(_frame(spark, events, {}), spec).toPandas()
    table["at_ms"] = table.event_timestamp.astype("int64") // 1_000_000
    out = {}
    for name, (_, t) in sets.items():
        for account in ACCOUNTS:
            rows = table[(table.account_id == f"{name}|{account}") & (table.at_ms <= t)].sort_values("at_ms")
            for w in WINDOWS:
                if rows.empty:
                    out[(name, account, w.suffix)] = empty()
                else:
                    out[(name, account, w.suffix)] = {n: _null(rows.iloc[-1][f"{n}_{w.suffix}"]) for n in NAMES}
    return out


def _null(value: Any) -> Any:
    return None if pd.isna(value) else value


@pytest.fixture
def topic(stack: Endpoints) -> Iterator[str]:
    with scratch_topic(stack, "parity-late") as name:
        yield name


def test_late_and_out_of_order_parity_at_serving_instants(stack: Endpoints, online_store: tuple[str, Store],
                                                          tmp_path: Path, topic: str) -> None:
    redis_url, redis_client = online_store
    project = topic.replace("-", "")
    key_project = store_project("parity", project)
    spec = spec_for(topic)
    by_suffix = shapes(spec)
    port = free_port()
    checkpoint = tmp_path / "checkpoint"
    config = write_job(tmp_path / "job.json", "parity", "parity-late", spec, view_spec(spec, project), checkpoint,
                       port)
    log = phases()
    closed_by_phase = watermarks([first + rest for first, rest in log])
    closed = {e["transaction_id"]: closed_by_phase[i] for i, (first, rest) in enumerate(log) for e in first + rest}

    def watermark_at(event: dict[str, Any]) -> int:
        return closed[event["transaction_id"]] or 0

    ensure_topic(stack.kafka_bootstrap, topic)
    sender = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1)
    job = JobProcess.for_config(config, stack, tmp_path / "job.log", port,
                                extra_env={"STREAMGUARD_REDIS_URL": redis_url})
    served: list[dict[Key, Values]] = []
    stored: dict[Key, Values | None] = {}
    sent: list[dict[str, Any]] = []
    try:
        for i, (stragglers, rest) in enumerate(log):
            if i:  # a batch has run with this phase's watermark, so the next batch filters late rows with it
                target = closed_by_phase[i] or 0

                def reached(at_least: int = target) -> bool:
                    return planned_watermark(checkpoint) >= at_least

                wait_for(reached, 240, f"watermark {target}", job, every=1)
            if i == STOPPED_PHASE:
                job.stop()  # this phase becomes the first batch after the restart
            for part in (stragglers, rest):  # every straggler is in Kafka before the events that follow it
                for event in part:
                    sender.send(event)
                sender.flush()
            phase = stragglers + rest
            sent += phase
            if not job.alive():
                job.start()
            # Every window the phase touched that is still open, against the oracle (streamguard.windows + the
            # watermark rule). The store holds panes: a window ending after the watermark the phase's events met
            # holds every event it counts (and its panes are kept); one ending at or before it is no longer read.
            # The last value read while a window was open is its final one: later phases' events are filtered
            # with a watermark at or above its end.
            oracle = expected_windows(sent, spec, watermark_at)
            touched = {(e["account_id"], s, end) for e in phase for s, shape in by_suffix.items()
                       for end in shape.ends_containing(e["event_time"]) if end > (closed_by_phase[i] or 0)}
            want: dict[Key, Values | None] = {k: oracle.get(k) for k in touched}
            deadline = time.monotonic() + 420
            while True:
                got: dict[Key, Values | None] = dict.fromkeys(touched)
                got.update(read_windows(redis_client, key_project, spec, touched))
                diff = differences(want, got)
                if not diff:
                    break
                assert job.alive(), f"job exited in phase {i}:\n{job.tail()}"
                assert time.monotonic() < deadline, f"phase {i}: Redis never matched:\n" + "\n".join(diff[:20])
                time.sleep(2)
            stored.update(got)
            # What serving reads at this phase's instant: the window containing it (absent = empty).
            t = INSTANTS[i]
            reads = {(a, s, shape.end_as_of(t)) for a in ACCOUNTS for s, shape in by_suffix.items()}
            online = read_windows(redis_client, key_project, spec, reads)
            served.append({k: online.get(k, empty()) for k in reads})
    finally:
        job.stop()

    # The same-batch rule on the straggler at LATE_TS (10 s windows containing it end at 6, 8, 10, 12, 14 s).
    w2, w3 = closed_by_phase[STOPPED_PHASE], closed_by_phase[STOPPED_PHASE + 1]
    assert w2 is not None and w3 is not None
    others = expected_windows([e for e in sent if e["transaction_id"] not in (LATE_FIRST, LATE_AGAIN)],
                              spec, watermark_at)
    ends = list(by_suffix["10s"].ends_containing(LATE_TS))
    assert any(end <= w2 for end in ends) and any(w2 < end <= w3 for end in ends) and any(end > w3 for end in ends)
    for end in ends:
        key = (ACCOUNTS[0], "10s", end)
        extra = (stored.get(key) or empty())["txn_count"] - (others.get(key) or empty())["txn_count"]
        assert extra == (0 if end <= w2 else 1 if end <= w3 else 2), (key, w2, w3, extra)

    spark = local_session("parity-late-batch", cores=1)
    try:
        # Closed windows: the batch job, told the watermark each event met, equals what the stream stored.
        rows = compute_window_features(_frame(spark, sent, closed), spec, watermark_field="watermark_ms").collect()
        batch = {(r["account_id"], r["window"], int(r["window_end_ms"])): {n: r[n] for n in NAMES} for r in rows}
        assert differences({key: batch.get(key) for key in stored}, stored) == []
        # Training sets at each t_i: over what had arrived by t_i, and over the complete log.
        arrived = [[e for first, rest in log[: i + 1] for e in first + rest] for i in range(len(INSTANTS))]
        sets = {f"arrived{i}": (arrived[i], t) for i, t in enumerate(INSTANTS)}
        sets |= {f"all{i}": (sent, t) for i, t in enumerate(INSTANTS)}
        training = training_at(spark, spec, sets)
    finally:
        spark.stop()
    arrived_later = 0
    for i, t in enumerate(INSTANTS):
        for (account, suffix, end), at_t in served[i].items():
            label = f"{account} {suffix} at t{i + 1}={t}"
            offline = training[(f"arrived{i}", account, suffix)]
            assert differences({("", "", 0): offline}, {("", "", 0): at_t}) == [], (label, offline, at_t)
            start = end - by_suffix[suffix].length_ms
            late = [e for e in sent[len(arrived[i]):] if e["account_id"] == account and start <= e["event_time"] < t]
            arrived_later += len(late)
            full = training[(f"all{i}", account, suffix)]
            assert full["txn_count"] == at_t["txn_count"] + len(late), (label, full, at_t, late)
            amounts = [e["amount"] for e in sent if e["account_id"] == account and start <= e["event_time"] < t]
            assert same(full["amount_max"], aggregate("max", amounts)), (label, full)
    assert arrived_later > 0, "the log should hold events that happened before an instant and arrived after it"
    assert sum(v["txn_count"] for reads in served for v in reads.values()) > 50
