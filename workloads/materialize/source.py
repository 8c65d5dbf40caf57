"""Read a FeatureView's Parquet source and pick what an incremental run writes.

Row selection is Feast's (file offline store): rows with ``start <= timestamp <= end`` (both ends
inclusive), then the latest row per entity key (by timestamp, then created timestamp).
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamguard.api.featureview import FeatureViewSpec
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


def source_path(spec: FeatureViewSpec, base_dir: Path) -> Path:
    assert spec.source is not None
    path = Path(spec.source.path)
    return path if path.is_absolute() else base_dir / path


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def read_interval(view: str, spec: FeatureViewSpec, start: datetime, end: datetime, base_dir: Path) -> Interval:
    """Load, check and select; every problem raises :class:`MaterializeError` before anything is written."""
    if spec.source is None:
        raise MaterializeError(view, "spec.source", "the view has no batch source to materialize", "NoSource")
    path = source_path(spec, base_dir)
    if not path.exists():
        raise MaterializeError(view, "spec.source.path", f"{path} does not exist", "SourceMissing")
    keys = [e.join_key for e in spec.entities]
    ts_field = spec.source.timestamp_field
    created = spec.source.created_timestamp_field
    columns = [*keys, ts_field, *([created] if created else []), *(f.name for f in spec.features)]
    try:
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    except (OSError, pa.ArrowException) as error:
        raise MaterializeError(
            view, "spec.source.path", f"{path} is not readable Parquet: {error}", "SourceUnreadable"
        ) from error
    _check_schema(view, spec, schema)
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as error:
        raise MaterializeError(view, "spec.source.path", f"cannot read {path}: {error}", "SourceUnreadable") from error

    ts = table.column(ts_field).cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
    lo, hi = _micros(start), _micros(end)
    not_after_end = pc.less_equal(ts, hi)
    newest = pc.max(pc.filter(ts, not_after_end)).as_py()
    inside = pc.and_(pc.greater_equal(ts, lo), not_after_end)
    table = table.set_column(table.schema.get_field_index(ts_field), ts_field, ts)
    selected = table if pc.all(inside, skip_nulls=False).as_py() else table.filter(inside)
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
