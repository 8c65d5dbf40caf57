"""Load one ``DataSlice`` (a Parquet file or folder, local or ``s3://``, limited in time) with only the
columns a run needs.

Time bounds: ``start`` inclusive, ``end`` exclusive; ``last`` keeps the trailing window
``(newest - last, newest]`` of what ``start``/``end`` left, where ``newest`` is the newest row's
timestamp (so a paused pipeline still compares its most recent data, and the freshness alerts say it
is stale). A timestamp column without a time zone is read as UTC.
"""

from datetime import UTC, datetime
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from streamguard import objectstore
from streamguard.api.driftmonitor import DataSlice
from streamguard.api.durations import parse_duration
from streamguard.objectstore import ObjectStoreError
from streamguard.workloads.drift.errors import DriftInputError

Role = Literal["reference", "current"]

_UNAVAILABLE = {"reference": "ReferenceUnavailable", "current": "CurrentUnavailable"}
_EMPTY = {"reference": "ReferenceEmpty", "current": "CurrentWindowEmpty"}


def _open(data: DataSlice, role: Role) -> ds.Dataset:
    try:
        location = objectstore.resolve(data.path)
    except ObjectStoreError as error:
        raise DriftInputError(_UNAVAILABLE[role], "spec.secretRef", str(error)) from None
    try:
        present = location.exists()
    except OSError as error:
        raise DriftInputError(
            _UNAVAILABLE[role], f"spec.{role}.path", f"cannot reach {data.path}: {location.describe_failure(error)}"
        ) from None
    if not present:
        raise DriftInputError(_UNAVAILABLE[role], f"spec.{role}.path", f"{data.path} does not exist")
    try:
        return ds.dataset(location.path, filesystem=location.filesystem, format="parquet", partitioning="hive")
    except (pa.ArrowInvalid, OSError) as error:
        raise DriftInputError(
            _UNAVAILABLE[role],
            f"spec.{role}.path",
            f"{data.path} is not readable Parquet: {location.describe_failure(error)}",
        ) from None


def _bound(moment: datetime, kind: pa.TimestampType) -> pa.Scalar:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if kind.tz is None:
        return pa.scalar(aware.astimezone(UTC).replace(tzinfo=None), type=kind)
    return pa.scalar(aware, type=kind)


def _time_filter(data: DataSlice, field: ds.Expression, kind: pa.TimestampType) -> ds.Expression | None:
    expression: ds.Expression | None = None
    if data.start is not None:
        expression = field >= _bound(data.start, kind)
    if data.end is not None:
        upper = field < _bound(data.end, kind)
        expression = upper if expression is None else expression & upper
    return expression


def load_slice(data: DataSlice, columns: tuple[str, ...], role: Role) -> pd.DataFrame:
    """The slice's rows, ``columns`` only; a missing path, column or row is a ``DriftInputError``."""
    dataset = _open(data, role)
    schema = dataset.schema
    ts_name = data.timestamp_field
    if ts_name not in schema.names:
        raise DriftInputError(
            "TimestampFieldMissing",
            f"spec.{role}.timestampField",
            f"column {ts_name!r} not found in {data.path} (columns: {', '.join(schema.names)})",
        )
    kind = schema.field(ts_name).type
    if not pa.types.is_timestamp(kind):
        raise DriftInputError(
            "TimestampFieldInvalid",
            f"spec.{role}.timestampField",
            f"column {ts_name!r} of {data.path} is {kind}, not a timestamp",
        )
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DriftInputError(
            "FeatureMissing",
            "spec.features",
            f"{', '.join(missing)} not found in the {role} data {data.path}",
        )
    field = ds.field(ts_name)
    expression = _time_filter(data, field, kind)
    if data.last is not None:
        newest = pc.max(dataset.to_table(columns=[ts_name], filter=expression)[ts_name])
        if newest.is_valid:
            window_start = pa.scalar(newest.value - _in_unit(parse_duration(data.last).total_seconds(), kind), kind)
            trailing = field > window_start
            expression = trailing if expression is None else expression & trailing
    table = dataset.to_table(columns=list(columns), filter=expression)
    if table.num_rows == 0:
        raise DriftInputError(_EMPTY[role], f"spec.{role}", f"no rows in {data.path} within {_describe(data)}")
    # Strings as pandas categoricals: far less memory, and Evidently runs about 4x faster on them.
    frame: pd.DataFrame = table.to_pandas(strings_to_categorical=True)
    return frame


def _in_unit(seconds: float, kind: pa.TimestampType) -> int:
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
    return int(seconds * per_second)


def _describe(data: DataSlice) -> str:
    parts = []
    if data.start is not None:
        parts.append(f"start={data.start.isoformat()}")
    if data.end is not None:
        parts.append(f"end={data.end.isoformat()}")
    if data.last is not None:
        parts.append(f"last={data.last}")
    return ", ".join(parts) if parts else "the whole data set"
