"""Compute every offline table of a folder of manifests from the raw FinServe transactions.

Each FeatureView named like a :data:`~streamguard.workloads.batch.profiles.PROFILES` entry gets its daily
profile table; each FeatureView filled by a StreamingWindow gets the point-in-time window table (the time rule of
:mod:`streamguard.workloads.batch.windows`). Tables
are written (overwritten) as Parquet to the FeatureView's ``spec.source.path``.
"""

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812

from streamguard import objectstore
from streamguard.api.featureview import FeatureView
from streamguard.finserve.resources import Manifests
from streamguard.workloads.batch.profiles import PROFILES, TIMESTAMP, compute_profile
from streamguard.workloads.batch.windows import window_features_as_of

TRANSACTION_COLUMNS = {
    "event_time": "timestamp",
    "customer_id": "string",
    "account_id": "string",
    "merchant_id": "string",
    "amount": "double",
    "is_foreign": "boolean",
    "is_night": "boolean",
    "is_fraud": "boolean",
}


class BatchInputError(ValueError):
    """Input the job cannot use; the message names the file or resource and the field."""


@dataclass(frozen=True)
class Written:
    view: str
    path: str
    rows: int


def read_transactions(spark: SparkSession, path: Path) -> DataFrame:
    """The raw transactions, checked for the columns and types the features need."""
    if not path.exists():
        raise BatchInputError(f"transactions {path} not found (run examples/finserve/generate.py)")
    frame = spark.read.parquet(str(path))
    types = dict(frame.dtypes)
    for column, dtype in TRANSACTION_COLUMNS.items():
        if column not in types:
            raise BatchInputError(f"transactions {path}: column {column!r} is missing")
        if types[column] != dtype and not (dtype == "timestamp" and types[column] == "timestamp_ntz"):
            raise BatchInputError(f"transactions {path}: column {column!r} is {types[column]}, expected {dtype}")
    return frame


def _feature_order(view_name: str, view: FeatureView, computed: list[str]) -> list[str]:
    declared = [f.name for f in view.spec.features]
    if sorted(declared) != sorted(computed):
        raise BatchInputError(
            f"FeatureView {view_name}: spec.features {sorted(declared)} differ from the computed {sorted(computed)}"
        )
    return declared


def _write(frame: DataFrame, view_name: str, view: FeatureView) -> Written:
    if view.spec.source is None:
        raise BatchInputError(f"FeatureView {view_name}: spec.source is required for an offline table")
    key = view.spec.entities[0].join_key
    computed = [c for c in frame.columns if c not in (key, TIMESTAMP)]
    ordered = frame.select(
        key, F.col(TIMESTAMP).alias(view.spec.source.timestamp_field), *_feature_order(view_name, view, computed)
    )
    ordered = ordered.orderBy(view.spec.source.timestamp_field, key).cache()
    rows = ordered.count()
    path = view.spec.source.path
    if objectstore.is_remote(path):
        # Hive-partitioned by the UTC day of the event, so interval readers open only their days' folders.
        day = F.date_format(F.col(view.spec.source.timestamp_field), "yyyy-MM-dd")
        by_day = (
            ordered.withColumn(objectstore.DATE_PARTITION, day)
            .repartition(objectstore.DATE_PARTITION)
            .sortWithinPartitions(view.spec.source.timestamp_field, key)
        )
        by_day.write.mode("overwrite").partitionBy(objectstore.DATE_PARTITION).parquet(objectstore.s3a_uri(path))
    else:
        ordered.coalesce(1).write.mode("overwrite").parquet(path)
    ordered.unpersist()
    return Written(view_name, view.spec.source.path, rows)


def run(
    spark: SparkSession, transactions_path: Path, manifests: Manifests, only: set[str] | None = None
) -> list[Written]:
    """Compute and write every offline table the manifests ask for (``only``: those view names)."""
    transactions = read_transactions(spark, transactions_path).cache()
    written = []
    for profile in PROFILES:
        view = manifests.feature_views.get(profile.view)
        if view is None or (only is not None and profile.view not in only):
            continue
        written.append(_write(compute_profile(transactions, profile), profile.view, view))
    for window in manifests.windows.values():
        view_name = window.spec.feature_view
        view = manifests.feature_views.get(view_name)
        if view is None:
            raise BatchInputError(
                f"StreamingWindow {window.metadata.get('name')}: spec.featureView {view_name!r} not found"
            )
        if view.spec.source is None or (only is not None and view_name not in only):
            continue
        written.append(_write(window_features_as_of(transactions, window.spec, TIMESTAMP), view_name, view))
    transactions.unpersist()
    return written
