"""Read a FeatureView's Parquet source and pick what an incremental run writes.

Row selection is Feast's (file offline store): rows with ``start <= timestamp <= end`` (both ends
inclusive), then the latest row per entity key (by timestamp, then created timestamp). The source is
a Parquet file or folder, local or ``s3://`` (:mod:`streamguard.objectstore`), optionally
hive-partitioned by day.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from streamguard import objectstore
from streamguard.api.featureview import FeatureViewSpec
from streamguard.objectstore import DATE_PARTITION, Location, ObjectStoreError
from streamguard.workloads.materialize.errors import MaterializeError

_ACCEPTS: dict[str, tuple[str, ...]] = {
    "INT64": ("integer",),
    "INT32": ("integer",),
    "FLOAT64": ("floating", "integer"),
    "FLOAT32": ("floating", "integer"),
    "STRING": ("string",),
    "BOOL": ("boolean",),
}


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype):
        return "floating"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    return str(dtype)


@dataclass(frozen=True)
class Interval:
    """The rows one run writes: the latest per entity in ``[start, end]``."""

    start: datetime
    end: datetime
    rows: pa.Table
    """Join keys, ``timestamp`` as int64 microseconds (UTC), then the features in spec order."""
    scanned: int
    """Source rows inside the interval (before keeping the latest per entity)."""
    newest_micros: int | None
    """Newest source timestamp at or before ``end`` (the whole source, not only the interval)."""


def _open(view: str, spec: FeatureViewSpec, base_dir: Path) -> tuple[Location, ds.Dataset]:
    assert spec.source is not None
    try:
        location = objectstore.resolve(spec.source.path, base_dir)
    except ObjectStoreError as error:
        raise MaterializeError(view, "spec.source.secretRef", str(error), "ObjectStoreCredentials") from None
    try:
        present = location.exists()
    except OSError as error:
        raise MaterializeError(
            view, "spec.source.path", f"cannot reach {location.uri}: {location.describe_failure(error)}",
            "SourceUnreadable",
        ) from None
    if not present:
        raise MaterializeError(view, "spec.source.path", f"{location.uri} does not exist", "SourceMissing")
    try:
        dataset = ds.dataset(location.path, filesystem=location.filesystem, format="parquet", partitioning="hive")
    except (OSError, pa.ArrowException) as error:
        raise MaterializeError(
            view, "spec.source.path", f"{location.uri} is not readable Parquet: {location.describe_failure(error)}",
            "SourceUnreadable",
        ) from None
    return location, dataset


def _date_bound(dataset: ds.Dataset, moment: datetime) -> pa.Scalar | None:
    """``moment``'s day as the type of the dataset's :data:`~streamguard.objectstore.DATE_PARTITION`
    column (``None`` when the dataset is not partitioned by day)."""
    partitioning = dataset.partitioning
    if partitioning is None or DATE_PARTITION not in partitioning.schema.names:
        return None
    kind = dataset.schema.field(DATE_PARTITION).type
    day = moment.astimezone(UTC).date()
    if pa.types.is_date(kind):
        return pa.scalar(day, type=kind)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.scalar(day.isoformat(), type=kind)
    return None


def _interval_filter(dataset: ds.Dataset, ts_field: str, start: datetime | None, end: datetime) -> ds.Expression:
    """``start <= ts <= end`` on the timestamp column (row groups are skipped by their statistics), plus
    the same days on the date partition when there is one (whole folders are skipped)."""
    kind = dataset.schema.field(ts_field).type
    field = ds.field(ts_field)

    def bound(moment: datetime) -> pa.Scalar:
        if kind.tz is None:
            return pa.scalar(moment.astimezone(UTC).replace(tzinfo=None), type=kind)
        return pa.scalar(moment, type=kind)

    expression = field <= bound(end)
    if start is not None:
        expression = expression & (field >= bound(start))
    last_day = _date_bound(dataset, end)
    if last_day is not None:
        expression = expression & (ds.field(DATE_PARTITION) <= last_day)
        first_day = _date_bound(dataset, start) if start is not None else None
        if first_day is not None:
            expression = expression & (ds.field(DATE_PARTITION) >= first_day)
    return expression


def _newest_before(dataset: ds.Dataset, ts_field: str, end: datetime) -> int | None:
    """The newest timestamp at or before ``end`` in the whole dataset, streamed a batch at a time (one
    column), so memory stays flat however long the history is."""
    newest: int | None = None
    scanner = dataset.scanner(columns=[ts_field], filter=_interval_filter(dataset, ts_field, None, end))
    for batch in scanner.to_batches():
        if batch.num_rows:
            value = pc.max(batch.column(0).cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
    return newest


def read_interval(view: str, spec: FeatureViewSpec, start: datetime, end: datetime, base_dir: Path) -> Interval:
    """Load, check and select; every problem raises :class:`MaterializeError` before anything is written.

    Only ``[start, end]`` is read (a dataset filter on the timestamp, date partitions pruned), so a run's
    memory follows its interval, not the source's history."""
    if spec.source is None:
        raise MaterializeError(view, "spec.source", "the view has no batch source to materialize", "NoSource")
    location, dataset = _open(view, spec, base_dir)
    keys = [e.join_key for e in spec.entities]
    ts_field = spec.source.timestamp_field
    created = spec.source.created_timestamp_field
    columns = [*keys, ts_field, *([created] if created else []), *(f.name for f in spec.features)]
    _check_schema(view, spec, dataset.schema)
    try:
        table = dataset.to_table(columns=columns, filter=_interval_filter(dataset, ts_field, start, end))
        ts = table.column(ts_field).cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
        newest = pc.max(ts).as_py() if table.num_rows else _newest_before(dataset, ts_field, start)
    except (OSError, pa.ArrowException) as error:
        raise MaterializeError(
            view, "spec.source.path", f"cannot read {location.uri}: {location.describe_failure(error)}",
            "SourceUnreadable",
        ) from None
    selected = table.set_column(table.schema.get_field_index(ts_field), ts_field, ts)
    for key in keys:
        nulls = selected.column(key).null_count
        if nulls:
            raise MaterializeError(
                view, f"spec.entities[{key}]", f"{nulls} source rows in the interval have a null {key}", "NullEntityKey"
            )
    latest = _latest_per_entity(selected, keys, ts_field, created)
    rows = pa.table(
        {
            **{k: latest.column(k) for k in keys},
            "timestamp": latest.column(ts_field),
            **{f.name: latest.column(f.name) for f in spec.features},
        }
    )
    return Interval(start, end, rows, selected.num_rows, newest)


def _check_schema(view: str, spec: FeatureViewSpec, schema: pa.Schema) -> None:
    assert spec.source is not None

    def column_kind(name: str, field: str) -> str:
        if name not in schema.names:
            raise MaterializeError(view, field, f"column {name!r} is missing from the source", "SchemaMismatch")
        return _kind(schema.field(name).type)

    for entity in spec.entities:
        kind = column_kind(entity.join_key, f"spec.entities[{entity.name}].joinKey")
        expected = "string" if entity.value_type == "STRING" else "integer"
        if kind != expected:
            raise MaterializeError(
                view,
                f"spec.entities[{entity.name}].joinKey",
                f"column {entity.join_key!r} is {kind}, expected {expected}",
                "SchemaMismatch",
            )
    for field, name in (
        ("spec.source.timestampField", spec.source.timestamp_field),
        ("spec.source.createdTimestampField", spec.source.created_timestamp_field),
    ):
        if name and column_kind(name, field) != "timestamp":
            raise MaterializeError(
                view, field, f"column {name!r} is {schema.field(name).type}, expected a timestamp", "SchemaMismatch"
            )
    for feature in spec.features:
        kind = column_kind(feature.name, f"spec.features[{feature.name}]")
        if kind not in _ACCEPTS[feature.dtype]:
            raise MaterializeError(
                view,
                f"spec.features[{feature.name}].dtype",
                f"column {feature.name!r} is {schema.field(feature.name).type}, which is not {feature.dtype}",
                "SchemaMismatch",
            )


def _latest_per_entity(table: pa.Table, keys: list[str], ts_field: str, created: str | None) -> pa.Table:
    """The last row per key after a stable sort by (timestamp, created timestamp).

    One argsort of the timestamps and a hash aggregation (max of the sorted position per key)."""
    if table.num_rows == 0:
        return table
    ts = table.column(ts_field).to_numpy()
    if created:
        created_us = table.column(created).cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
        order = np.lexsort((created_us.to_numpy(), ts))
    else:
        order = np.argsort(ts, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    ranked = pa.table({**{k: table.column(k) for k in keys}, "_rank": rank})
    last = ranked.group_by(keys, use_threads=True).aggregate([("_rank", "max")]).column("_rank_max").to_numpy()
    return table.take(pa.array(np.sort(order[last])))
