"""The training-set table of a window view follows the time rule, checked against brute force.

Rule (docs/semantics.md, "The time rule"): the value at ``t`` is the window that contains ``t``
(``end = floor(t / S) * S + S``) over the events with ``end - W <= ts < t``. The batch table
(``window_features_as_of``) is read as Feast's point-in-time join reads it: the key's latest row at or
before ``t``. Events fall on whole seconds or a millisecond next to one, and slides are whole seconds,
so events land on window boundaries, on each other and on the label instants.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from streamguard.api.streamingwindow import AvroContract, KafkaSource, StreamingWindowSpec, Window
from streamguard.windows import aggregate
from streamguard.workloads.batch.windows import window_features_as_of
from tests.workloads.streaming.support import ONE_OF_EACH

pytestmark = pytest.mark.spark

AGGREGATIONS = ONE_OF_EACH
KEYS = ("a", "b", "c")
SECOND = 1000


@dataclass(frozen=True)
class Event:
    key: str
    ts: int
    amount: float | None


def _spec(shapes: Sequence[tuple[int, int]]) -> StreamingWindowSpec:
    return StreamingWindowSpec(
        feature_view="v",
        source=KafkaSource(topic="t"),
        contract=AvroContract(schema="\"string\""),  # type: ignore[call-arg]
        key_field="key",
        event_time_field="ts",
        watermark="1s",
        windows=[
            Window(name=f"w{i}", length=f"{n * s}ms", slide=f"{s}ms") for i, (s, n) in enumerate(shapes)
        ],
        aggregations=AGGREGATIONS,
    )


def _reference(events: Sequence[Event], key: str, t: int, slide: int, length: int) -> dict[str, object]:
    """The rule, literally: the window containing ``t``, over the key's events before ``t``."""
    end = t // slide * slide + slide
    amounts = [e.amount for e in events if e.key == key and end - length <= e.ts < t]
    return {a.name: aggregate(a.function, amounts if a.field else [1] * len(amounts)) for a in AGGREGATIONS}


def _table(spark: SparkSession, events: Sequence[Event], spec: StreamingWindowSpec, as_timestamp: bool) -> DataFrame:
    frame = spark.createDataFrame(
        [(e.key, e.ts, e.amount) for e in events], "key string, ts long, amount double"
    )
    if as_timestamp:
        frame = frame.withColumn("ts", F.timestamp_millis(F.col("ts")))
    return window_features_as_of(frame, spec)


def _as_of(table: pd.DataFrame, key: str, t: int) -> "pd.Series[object] | None":
    """Feast's point-in-time lookup: the latest row of ``key`` at or before ``t``."""
    rows = table[(table.key == key) & (table.at_ms <= t)]
    return None if rows.empty else rows.iloc[-1]


def _same(expected: object, got: object) -> bool:
    if expected is None:
        return bool(pd.isna(got))
    return not pd.isna(got) and got == pytest.approx(expected, rel=1e-12, abs=1e-9)


def check_rule(spark: SparkSession, scenarios: Sequence[Sequence[Event]], shapes: Sequence[tuple[int, int]],
               extra: Sequence[int] = (), as_timestamp: bool = False) -> None:
    """Every scenario (its own keys) in one Spark run, each key read at every instant near an event or a
    window boundary."""
    spec = _spec(shapes)
    events = [Event(f"{i}:{e.key}", e.ts, e.amount) for i, scenario in enumerate(scenarios) for e in scenario]
    table: pd.DataFrame = _table(spark, events, spec, as_timestamp).toPandas()
    assert list(table.columns) == ["key", "event_timestamp", *spec.feature_names()]
    table["at_ms"] = table.event_timestamp.astype("int64") // 1_000_000
    assert not table.duplicated(["key", "at_ms"]).any()
    ends = {k * s + d for s, _ in shapes for k in range(0, 100 * SECOND // s + 2) for d in (-1, 0, 1)}
    instants = sorted(ends | {e.ts + d for e in events for d in (-1, 0, 1)} | set(extra))
    keys = sorted({f"{i}:{k}" for i in range(len(scenarios)) for k in KEYS})
    labels = pd.DataFrame([(k, t) for k in keys for t in instants], columns=["key", "at_ms"])
    read = pd.merge_asof(labels.sort_values("at_ms"), table.sort_values("at_ms"), on="at_ms", by="key")
    by_key: dict[str, list[Event]] = {k: [] for k in keys}
    for e in events:
        by_key[e.key].append(e)
    for row in read.itertuples(index=False):
        for i, (slide, n) in enumerate(shapes):
            expected = _reference(by_key[row.key], row.key, row.at_ms, slide, n * slide)
            if pd.isna(row.event_timestamp):  # no row at or before t: the rule's window must be empty
                assert expected["txn_count"] == 0, (row.key, row.at_ms, i)
                continue
            for name, value in expected.items():
                got = getattr(row, f"{name}_w{i}")
                assert _same(value, got), f"{row.key} t={row.at_ms} window {i} ({n}x{slide}ms) {name}: {got} != {value}"


events_st = st.lists(
    st.builds(
        Event,
        key=st.sampled_from(KEYS),
        ts=st.tuples(st.integers(min_value=0, max_value=60), st.sampled_from((0, 0, 1, 999))).map(
            lambda p: p[0] * SECOND + p[1]
        ),
        amount=st.one_of(st.none(), st.integers(min_value=-50, max_value=50).map(float)),
    ),
    min_size=1,
    max_size=40,
)
shapes_st = st.lists(
    st.tuples(st.integers(min_value=1, max_value=9).map(lambda s: s * SECOND), st.integers(min_value=1, max_value=5)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios=st.lists(events_st, min_size=1, max_size=10), shapes=shapes_st, as_timestamp=st.booleans(),
       extra=st.lists(st.integers(min_value=-3 * SECOND, max_value=100 * SECOND), max_size=10))
@example(  # events on boundaries, at each other's times and at the labels
    scenarios=[[Event("a", 0, 1.0), Event("a", 4000, 2.0), Event("a", 4000, None), Event("a", 4001, 3.0),
                Event("b", 8999, -1.0), Event("a", 8000, 4.0), Event("a", 12_000, 5.0)]],
    shapes=[(4000, 2), (4000, 1), (1000, 3)],
    extra=[],
    as_timestamp=False,
)
def test_training_table_equals_the_rule(spark: SparkSession, scenarios: list[list[Event]],
                                        shapes: list[tuple[int, int]], extra: list[int], as_timestamp: bool) -> None:
    """Each example is one Spark run over up to 10 independent event logs (Spark's fixed cost dominates)."""
    check_rule(spark, scenarios, shapes, extra, as_timestamp)


def test_the_seconds_before_t_count(spark: SparkSession) -> None:
    """A burst in the open window is in the training row at t (the old closed-window rule missed it),
    an event at exactly t is not, and one a millisecond before t is."""
    minute, slide = 60_000, 15_000
    burst = [Event("a", 62_000 + i, 10.0) for i in range(5)]
    spec_shapes = [(slide, minute // slide)]
    table: pd.DataFrame = _table(spark, [Event("a", 1_000, 1.0), *burst], _spec(spec_shapes), False).toPandas()
    table["at_ms"] = table.event_timestamp.astype("int64") // 1_000_000
    at = _as_of(table, "a", 30_000)  # window [-15 s, 45 s)
    assert at is not None and at["txn_count_w0"] == 1 and at["amount_sum_w0"] == 1.0
    at = _as_of(table, "a", 62_004)  # window [15 s, 75 s): 62.000..62.003 s, not 62.004 s itself
    assert at is not None and at["txn_count_w0"] == 4 and at["amount_sum_w0"] == 40.0 and at["amount_min_w0"] == 10.0
    at = _as_of(table, "a", 62_005)
    assert at is not None and at["txn_count_w0"] == 5 and at["amount_max_w0"] == 10.0
    at = _as_of(table, "a", 75_000)  # window [30 s, 90 s)
    assert at is not None and at["txn_count_w0"] == 5 and at["amount_min_w0"] == 10.0
    at = _as_of(table, "a", 135_000)  # window [75 s, 135 s): empty
    assert at is not None and at["txn_count_w0"] == 0 and at["amount_sum_w0"] == 0 and pd.isna(at["amount_avg_w0"])
