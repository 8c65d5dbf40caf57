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

:func:`window_features_as_of` is the Feast offline table of the window view (training sets), under the
time rule of :mod:`streamguard.windows`: the value at label time ``t`` is the window that contains ``t``
(``end = floor(t / S) * S + S``) over the events with ``end - W <= ts < t``, exactly what serving reads
at ``t`` from the window the stream is filling. Instants are taken at millisecond precision, like event
times and serving's clock: an event at ``ts`` counts for labels from ``ts + 1 ms`` on, never at ``ts``.
The table has a row at every instant a value changes (one millisecond after each event, and when a
slide leaves a window), so Feast's point-in-time join (latest row at or before ``t``) returns the rule's
value and never an event at or after ``t``.
"""

from dataclasses import dataclass

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


def _check_fields(events: DataFrame, spec: StreamingWindowSpec) -> list[str]:
    """The value fields the aggregations read; raises when ``events`` lack a field the spec names."""
    wanted = [spec.key_field, spec.event_time_field, *(a.field for a in spec.aggregations if a.field)]
    missing = [f for f in wanted if f not in events.columns]
    if missing:
        raise ValueError(f"StreamingWindow events lack field(s) {', '.join(sorted(set(missing)))}")
    return sorted({a.field for a in spec.aggregations if a.field})


def compute_window_features(
    events: DataFrame,
    spec: StreamingWindowSpec,
    ends_from_ms: int | None = None,
    ends_until_ms: int | None = None,
    watermark_field: str | None = None,
) -> DataFrame:
    """Every non-empty window of ``spec`` over ``events``; optionally only ends in ``[from, until)``.

    ``watermark_field`` names a column holding, per event, the event-time watermark (epoch ms) in force
    when the stream processed it: the event is then left out of every window ending at or before it,
    as the streaming job does. Without it (the offline job: events alone do not say in which order the
    stream read them) every event counts in every window that contains it.
    """
    key = spec.key_field
    value_fields = _check_fields(events, spec)
    if watermark_field is not None and watermark_field not in events.columns:
        raise ValueError(f"StreamingWindow events lack the watermark field {watermark_field!r}")
    closed = [F.col(watermark_field).alias("_closed_ms")] if watermark_field else []
    base = events.select(
        F.col(key), _event_ms(events, spec.event_time_field).alias("_ts_ms"), *value_fields, *closed
    )
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
                *([F.col("_closed_ms")] if closed else []),
            )
        )
    rows = exploded[0]
    for part in exploded[1:]:
        rows = rows.unionByName(part)
    if ends_from_ms is not None:
        rows = rows.where(F.col("window_end_ms") >= F.lit(ends_from_ms))
    if ends_until_ms is not None:
        rows = rows.where(F.col("window_end_ms") < F.lit(ends_until_ms))
    if closed:
        rows = rows.where(F.col("_closed_ms").isNull() | (F.col("window_end_ms") > F.col("_closed_ms")))
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


@dataclass(frozen=True)
class _Part:
    """A partial aggregate an aggregation is rebuilt from: ``kind`` over the event column ``source``."""

    alias: str
    kind: str
    """``count`` (of non-null values), ``sum``, ``min`` or ``max``."""
    source: Column

    def over_events(self) -> Column:
        return {"count": F.count, "sum": F.sum, "min": F.min, "max": F.max}[self.kind](self.source)

    def merge(self, partials: Column) -> Column:
        """Partials of several slides into one (an aggregate function)."""
        return {"min": F.min, "max": F.max}.get(self.kind, F.sum)(partials)

    def combine(self, closed: Column, current: Column) -> Column:
        """The closed slides' partial with the current slide's (a null one holds nothing)."""
        if self.kind == "min":
            return F.least(closed, current)
        if self.kind == "max":
            return F.greatest(closed, current)
        total = F.coalesce(closed, F.lit(0)) + F.coalesce(current, F.lit(0))
        if self.kind == "count":
            return total
        return F.when(closed.isNull() & current.isNull(), F.lit(None)).otherwise(total)


def _parts(agg: Aggregation) -> list[_Part]:
    if agg.function == "count":
        return [_Part(f"_n_{agg.name}", "count", F.lit(1))]
    assert agg.field is not None  # the API model requires a field for every other function
    value = F.col(agg.field)
    if agg.function == "avg":
        return [_Part(f"_s_{agg.name}", "sum", value), _Part(f"_n_{agg.name}", "count", value)]
    return [_Part(f"_{agg.function}_{agg.name}", agg.function, value)]


def _final(agg: Aggregation, parts: list[Column], events: DataFrame) -> Column:
    if agg.function == "sum":
        assert agg.field is not None
        return F.coalesce(parts[0], F.lit(0).cast(events.schema[agg.field].dataType))
    if agg.function == "avg":
        return F.when(parts[1] > 0, parts[0] / parts[1])
    return parts[0]


def _window_as_of(events: DataFrame, spec: StreamingWindowSpec, suffix: str, shape: WindowShape) -> DataFrame:
    """One window's value at each instant it changes: ``key, window, _at_ms, <aggregation>...``.

    The value at ``t`` is the closed slides ``[end - W, floor(t/S)*S)`` combined with the current slide's
    events before ``t``. It changes one millisecond after each event (``_at_ms = ts + 1``: the first
    instant with ``ts < t``) and when a slide leaves the window (``_at_ms = slide start + W``).
    """
    key, slide, n = spec.key_field, shape.slide_ms, shape.length_ms // shape.slide_ms
    by_agg = {agg.name: _parts(agg) for agg in spec.aggregations}
    parts = [p for ps in by_agg.values() for p in ps]
    rows = events.withColumn("_slide", F.col("_ts_ms") - F.pmod(F.col("_ts_ms"), F.lit(slide)))
    slides = rows.groupBy(key, "_slide").agg(*[p.over_events().alias(p.alias) for p in parts])
    nothing = [F.lit(None).cast(slides.schema[p.alias].dataType).alias(p.alias) for p in parts]

    in_slide = Window.partitionBy(key, "_slide").orderBy("_ts_ms").rangeBetween(Window.unboundedPreceding, 0)
    at = F.col("_ts_ms") + F.lit(1)
    at_slide = at - F.pmod(at, F.lit(slide))
    same = at_slide == F.col("_slide")  # else ts + 1 starts the next slide, whose events before it are none
    after_events = rows.select(
        F.col(key),
        at.alias("_at_ms"),
        at_slide.alias("_at_slide"),
        *[F.when(same, p.over_events().over(in_slide)).alias(p.alias) for p in parts],
    )
    slide_out = F.col("_slide") + F.lit(shape.length_ms)  # a slide start itself: W is a multiple of S
    leaving = slides.select(F.col(key), slide_out.alias("_at_ms"), slide_out.alias("_at_slide"), *nothing)
    instants = after_events.unionByName(leaving).dropDuplicates([key, "_at_ms"])

    closed_alias = {p.alias: f"_closed{p.alias}" for p in parts}
    if n > 1:
        tagged = instants.select(
            "*", *[F.lit(None).cast(slides.schema[p.alias].dataType).alias(closed_alias[p.alias]) for p in parts]
        ).unionByName(
            slides.select(
                F.col(key),
                F.lit(None).cast("long").alias("_at_ms"),
                F.col("_slide").alias("_at_slide"),
                *nothing,
                *[F.col(p.alias).alias(closed_alias[p.alias]) for p in parts],
            )
        )
        earlier = Window.partitionBy(key).orderBy("_at_slide").rangeBetween(-(n - 1) * slide, -slide)
        valued = tagged.select(
            F.col(key),
            F.col("_at_ms"),
            *[F.col(p.alias) for p in parts],
            *[p.merge(F.col(closed_alias[p.alias])).over(earlier).alias(closed_alias[p.alias]) for p in parts],
        ).where(F.col("_at_ms").isNotNull())
    else:
        valued = instants.select(
            F.col(key),
            F.col("_at_ms"),
            *[F.col(p.alias) for p in parts],
            *[F.lit(None).cast(slides.schema[p.alias].dataType).alias(closed_alias[p.alias]) for p in parts],
        )
    finals = [
        _final(
            agg,
            [p.combine(F.col(closed_alias[p.alias]), F.col(p.alias)) for p in by_agg[agg.name]],
            events,
        ).alias(agg.name)
        for agg in spec.aggregations
    ]
    return valued.select(F.col(key), F.lit(suffix).alias("window"), F.col("_at_ms"), *finals)


def window_features_as_of(
    events: DataFrame, spec: StreamingWindowSpec, timestamp_field: str = "event_timestamp"
) -> DataFrame:
    """The point-in-time table of the window view of ``spec`` over raw ``events`` (see the module docstring).

    Columns: the key, ``timestamp_field`` and ``<aggregation>_<suffix>`` for every pair
    (``StreamingWindowSpec.feature_names()``). A row at instant ``c`` holds every window's value for
    labels at ``t`` with ``c <= t`` up to the key's next row: the rows are the instants where any value
    changes. Before a key's first event there is no row; after its last event has left every window the
    last row holds count 0, sum 0 and null avg/min/max. Events without an event time are ignored (the
    stream dead-letters them).
    """
    key = spec.key_field
    value_fields = _check_fields(events, spec)
    base = events.select(
        F.col(key), _event_ms(events, spec.event_time_field).alias("_ts_ms"), *value_fields
    ).where(F.col("_ts_ms").isNotNull())
    per_window = [
        _window_as_of(base, spec, w.suffix, WindowShape.parse(w.length, w.slide)) for w in spec.windows
    ]
    rows = per_window[0]
    for part in per_window[1:]:
        rows = rows.unionByName(part)
    names = [a.name for a in spec.aggregations]
    suffixes = [w.suffix for w in spec.windows]
    packed = rows.groupBy(key, "_at_ms").agg(
        *[F.first(F.when(F.col("window") == s, F.struct(*names)), ignorenulls=True).alias(f"_w_{s}") for s in suffixes]
    )
    running = Window.partitionBy(key).orderBy("_at_ms").rowsBetween(Window.unboundedPreceding, 0)
    carried = packed.select(
        F.col(key),
        F.col("_at_ms"),
        *[F.last(f"_w_{s}", ignorenulls=True).over(running).alias(f"_w_{s}") for s in suffixes],
    )
    features = [F.col(f"_w_{s}")[name].alias(f"{name}_{s}") for name in names for s in suffixes]
    return carried.select(F.col(key), F.timestamp_millis(F.col("_at_ms")).alias(timestamp_field), *features)
