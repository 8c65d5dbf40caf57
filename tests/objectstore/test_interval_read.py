"""The materializer reads only its interval: a hive-partitioned source gives the same rows as the same data
in one file, and partitions outside the interval are never opened. Local files, no stack."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamguard.api.featureview import FeatureViewSpec
from streamguard.workloads.materialize.errors import MaterializeError
from streamguard.workloads.materialize.source import read_interval

DAY0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 6


def _spec(path: Path) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(
        {
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "n", "dtype": "INT64"}],
            "source": {"path": str(path)},
        }
    )


def _rows() -> pa.Table:
    moments = [DAY0 + timedelta(days=d, hours=h) for d in range(DAYS) for h in (0, 7, 23)]
    return pa.table(
        {
            "customer_id": [f"C{i % 4}" for i in range(len(moments))],
            "event_timestamp": pa.array(moments, pa.timestamp("us", tz="UTC")),
            "n": pa.array(range(len(moments)), pa.int64()),
        }
    )


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    rows = _rows()
    flat = tmp_path / "flat.parquet"
    pq.write_table(rows, flat)
    partitioned = tmp_path / "partitioned"
    for day in range(DAYS):
        moment = DAY0 + timedelta(days=day)
        folder = partitioned / f"date={moment:%Y-%m-%d}"
        folder.mkdir(parents=True)
        ts = rows.column("event_timestamp").to_pylist()
        pq.write_table(rows.filter(pa.array([t.date() == moment.date() for t in ts])), folder / "part-0.parquet")
    return flat, partitioned


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (DAY0, DAY0 + timedelta(days=DAYS)),
        (DAY0 + timedelta(days=2, hours=7), DAY0 + timedelta(days=3, hours=7)),  # both ends inclusive
        (DAY0 + timedelta(days=4, hours=1), DAY0 + timedelta(days=4, hours=6)),  # empty: newest comes from before
        (DAY0 + timedelta(days=9), DAY0 + timedelta(days=10)),  # after the data
    ],
)
def test_partitioned_source_reads_like_one_file(sources: tuple[Path, Path], start: datetime, end: datetime) -> None:
    flat, partitioned = sources
    one = read_interval("v", _spec(flat), start, end, flat.parent)
    many = read_interval("v", _spec(partitioned), start, end, flat.parent)
    assert one.scanned == many.scanned and one.newest_micros == many.newest_micros
    assert one.rows.sort_by("customer_id").equals(many.rows.sort_by("customer_id"))
    assert one.newest_micros is not None


def test_partitions_outside_the_interval_are_never_opened(sources: tuple[Path, Path]) -> None:
    _, partitioned = sources
    (partitioned / "date=2026-10-02" / "part-0.parquet").write_bytes(b"not parquet")
    recent = read_interval("v", _spec(partitioned), DAY0 + timedelta(days=4), DAY0 + timedelta(days=5), partitioned)
    assert recent.scanned == 4  # the three rows of day 4 and the one at the end, inclusive
    with pytest.raises(MaterializeError) as raised:
        read_interval("v", _spec(partitioned), DAY0, DAY0 + timedelta(days=5), partitioned)
    assert raised.value.reason == "SourceUnreadable"
