"""Sliding-window features in batch, with exactly the semantics of :mod:`streamguard.windows`.

:func:`compute_window_features` is the reference the streaming job's parity test compares against.
Its output has one row per (entity key, window suffix, window end) for every window holding at least
one event (an absent row is an empty window: count 0, sum 0, avg/min/max null), with columns:

=================  ==========================================================================
``<key_field>``    the entity key (as in the events)
``window``         the window suffix (``Window.suffix``: its name, default its length)
``window_start``   timestamp (UTC) = ``window_end - length``
``window_end``     timestamp (UTC); the window covers ``[window_start, window_end)``
``window_end_ms``  ``window_end`` as epoch milliseconds (a multiple of the slide)
``<aggregation>``  one column per ``spec.aggregations[].name``: count -> bigint; sum -> the field's
                   type (0 when every value is null); avg -> double; min/max -> the field's type
=================  ==========================================================================

Event times are taken at millisecond precision (``floor(micros / 1000)``); a long event-time column is
read as epoch milliseconds. Null values are ignored by sum/avg/min/max and counted by count.

:func:`window_features_as_of` turns that into the Feast offline table of the window view: one row per
(key, end) where any window's value changes, holding for every window the value of its latest window
that has closed by then (``end <= event_timestamp``), so a point-in-time join never sees an event from
after the label time.
"""

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.types import LongType

from streamguard.api.streamingwindow import Aggregation, StreamingWindowSpec
from streamguard.windows import WindowShape

WINDOW_COLUMNS = ("window", "window_start", "window_end", "window_end_ms")


def _event_ms(events: DataFrame, field: str) -> Column:
    if isinstance(events.schema[field].dataType, LongType):
        return F.col(field)
    return F.floor(F.unix_micros(F.col(field)) / F.lit(1000)).cast("long")


def _aggregate(agg: Aggregation, events: DataFrame) -> Column:
    if agg.function == "count":
        return F.count(F.lit(1)).alias(agg.name)
    assert agg.field is not None  # the API model requires a field for every other function
    if agg.function == "sum":
        zero = F.lit(0).cast(events.schema[agg.field].dataType)
        return F.coalesce(F.sum(agg.field), zero).alias(agg.name)
    return {"avg": F.avg, "min": F.min, "max": F.max}[agg.function](F.col(agg.field)).alias(agg.name)


def compute_window_features(
    events: DataFrame,
    spec: StreamingWindowSpec,
    ends_from_ms: int | None = None,
    ends_until_ms: int | None = None,
) -> DataFrame:
    """Every non-empty window of ``spec`` over ``events``; optionally only ends in ``[from, until)``."""
    key = spec.key_field
    wanted = [key, spec.event_time_field, *(a.field for a in spec.aggregations if a.field)]
    missing = [f for f in wanted if f not in events.columns]
    if missing:
        raise ValueError(f"StreamingWindow events lack field(s) {', '.join(sorted(set(missing)))}")
    value_fields = sorted({a.field for a in spec.aggregations if a.field})
    base = events.select(F.col(key), _event_ms(events, spec.event_time_field).alias("_ts_ms"), *value_fields)
    exploded = []
    for window in spec.windows:
        shape = WindowShape.parse(window.length, window.slide)
        first_end = F.col("_ts_ms") - F.pmod(F.col("_ts_ms"), F.lit(shape.slide_ms)) + F.lit(shape.slide_ms)
        ends = F.sequence(first_end, first_end + F.lit(shape.length_ms - shape.slide_ms), F.lit(shape.slide_ms))
        exploded.append(
            base.select(
                F.col(key),
                F.lit(window.suffix).alias("window"),
                F.lit(shape.length_ms).cast("long").alias("_length_ms"),
                F.explode(ends).alias("window_end_ms"),
                *value_fields,
            )
        )
    rows = exploded[0]
    for part in exploded[1:]:
        rows = rows.unionByName(part)
    if ends_from_ms is not None:
        rows = rows.where(F.col("window_end_ms") >= F.lit(ends_from_ms))
    if ends_until_ms is not None:
        rows = rows.where(F.col("window_end_ms") < F.lit(ends_until_ms))
    aggregates = [_aggregate(agg, events) for agg in spec.aggregations]
    grouped = rows.groupBy(key, "window", "_length_ms", "window_end_ms").agg(*aggregates)
    return grouped.select(
        F.col(key),
        F.col("window"),
        F.timestamp_micros((F.col("window_end_ms") - F.col("_length_ms")) * 1000).alias("window_start"),
        F.timestamp_micros(F.col("window_end_ms") * 1000).alias("window_end"),
        F.col("window_end_ms"),
        *[F.col(a.name) for a in spec.aggregations],
    )


def _empty_values(spec: StreamingWindowSpec, long_rows: DataFrame) -> list[Column]:
    out = []
    for agg in spec.aggregations:
        dtype = long_rows.schema[agg.name].dataType
        value = F.lit(0) if agg.function in ("count", "sum") else F.lit(None)
        out.append(value.cast(dtype).alias(agg.name))
    return out


def window_features_as_of(
    long_rows: DataFrame, spec: StreamingWindowSpec, timestamp_field: str = "event_timestamp"
) -> DataFrame:
    """The wide, point-in-time table of ``compute_window_features`` output (see the module docstring).

    Columns: the key, ``timestamp_field`` (a window end) and ``<aggregation>_<suffix>`` for every pair
    (``StreamingWindowSpec.feature_names()``). A window that has emptied gets an explicit empty row at
    the first end after its last non-empty one, so the value returns to count 0 / sum 0 / null.
    """
    key = spec.key_field
    slides = {w.suffix: WindowShape.parse(w.length, w.slide).slide_ms for w in spec.windows}
    slide_col = F.create_map(*[item for s, ms in slides.items() for item in (F.lit(s), F.lit(ms))])
    names = [a.name for a in spec.aggregations]
    by_window = Window.partitionBy(key, "window").orderBy("window_end_ms")
    with_next = long_rows.select(key, "window", "window_end_ms", *names).withColumn(
        "_next", F.lead("window_end_ms").over(by_window)
    )
    empties = with_next.where(
        F.col("_next").isNull() | (F.col("_next") != F.col("window_end_ms") + slide_col[F.col("window")])
    ).select(
        F.col(key),
        F.col("window"),
        (F.col("window_end_ms") + slide_col[F.col("window")]).alias("window_end_ms"),
        *_empty_values(spec, long_rows),
    )
    rows = with_next.drop("_next").unionByName(empties)
    suffixes = [w.suffix for w in spec.windows]
    packed = rows.groupBy(key, "window_end_ms").agg(
        *[F.first(F.when(F.col("window") == s, F.struct(*names)), ignorenulls=True).alias(f"_w_{s}") for s in suffixes]
    )
    running = Window.partitionBy(key).orderBy("window_end_ms").rowsBetween(Window.unboundedPreceding, 0)
    carried = packed.select(
        F.col(key),
        F.col("window_end_ms"),
        *[F.last(f"_w_{s}", ignorenulls=True).over(running).alias(f"_w_{s}") for s in suffixes],
    )
    empty_by_name = {a.name: a.function in ("count", "sum") for a in spec.aggregations}
    features: list[Column] = []
    for agg_name in names:
        for s in suffixes:
            value = F.col(f"_w_{s}")[agg_name]
            if empty_by_name[agg_name]:
                value = F.coalesce(value, F.lit(0).cast(long_rows.schema[agg_name].dataType))
            features.append(value.alias(f"{agg_name}_{s}"))
    return carried.select(
        F.col(key), F.timestamp_micros(F.col("window_end_ms") * 1000).alias(timestamp_field), *features
    )
