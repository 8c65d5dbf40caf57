"""The Spark batch features equal values computed independently from the raw transactions."""

from collections import defaultdict
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.windows import WindowShape, aggregate
from streamguard.workloads.batch.windows import compute_window_features
from tests.workloads.materialize.conftest import OfflineData

DAY = pd.Timedelta(days=1)


def _trailing(tx: pd.DataFrame, at: pd.Timestamp, days: int) -> pd.DataFrame:
    return tx[(tx.event_time >= at - days * DAY) & (tx.event_time < at)]


def _ratio(numerator: float, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _expected_profile(view: str, tx: pd.DataFrame, at: pd.Timestamp) -> dict[str, float]:
    w7, w30, w90 = (_trailing(tx, at, d) for d in (7, 30, 90))
    if view == "customer-profile":
        return {
            "cust_txn_count_7d": len(w7),
            "cust_txn_count_30d": len(w30),
            "cust_amount_avg_30d": _ratio(w30.amount.sum(), len(w30)),
            "cust_foreign_ratio_30d": _ratio(w30.is_foreign.sum(), len(w30)),
            "cust_distinct_merchants_90d": w90.merchant_id.nunique(),
        }
    if view == "account-profile":
        return {
            "acct_txn_count_7d": len(w7),
            "acct_amount_sum_30d": w30.amount.sum(),
            "acct_amount_avg_90d": _ratio(w90.amount.sum(), len(w90)),
            "acct_night_ratio_30d": _ratio(w30.is_night.sum(), len(w30)),
        }
    return {
        "merch_txn_count_7d": len(w7),
        "merch_amount_avg_30d": _ratio(w30.amount.sum(), len(w30)),
        "merch_distinct_customers_30d": w30.customer_id.nunique(),
        "merch_fraud_rate_90d": _ratio(w90.is_fraud.sum(), len(w90)),
    }


@pytest.mark.spark
@pytest.mark.parametrize("view", ["customer-profile", "account-profile", "merchant-profile"])
def test_profile_tables_equal_raw_recomputation(offline: OfflineData, view: str) -> None:
    spec = offline.manifests.feature_views[view].spec
    assert spec.source is not None
    table = pd.read_parquet(spec.source.path)
    key = spec.entities[0].join_key
    assert list(table.columns) == [key, "event_timestamp"] + [f.name for f in spec.features]
    tx = offline.transactions
    by_key = dict(tuple(tx.groupby(key)))
    first_day = tx.groupby(key).event_time.min().dt.floor("D") + DAY
    last_snapshot = tx.event_time.max().floor("D") + DAY
    expected_rows = sum(int((last_snapshot - d) / DAY) + 1 for d in first_day)
    assert len(table) == expected_rows
    sample = table.sample(n=min(400, len(table)), random_state=3)
    for row in sample.itertuples(index=False):
        expected = _expected_profile(view, by_key[getattr(row, key)], row.event_timestamp)
        for name, value in expected.items():
            got = getattr(row, name)
            if isinstance(value, float) and np.isnan(value):
                assert pd.isna(got), f"{view} {getattr(row, key)} {row.event_timestamp} {name}: {got} != null"
            else:
                assert got == pytest.approx(value, rel=1e-9), f"{view} {getattr(row, key)} {row.event_timestamp} {name}"


def _reference_windows(tx: pd.DataFrame, spec: StreamingWindowSpec) -> dict[tuple[str, str, int], dict[str, object]]:
    """The pure-Python definition (streamguard.windows), event by event."""
    members: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for key, ts, amount in zip(tx[spec.key_field], tx.event_time, tx.amount, strict=True):
        ts_ms = int(ts.value // 1_000_000)
        for window in spec.windows:
            for end in WindowShape.parse(window.length, window.slide).ends_containing(ts_ms):
                members[(key, window.suffix, end)].append(amount)
    return {
        cell: {a.name: aggregate(a.function, values) for a in spec.aggregations} for cell, values in members.items()
    }


@pytest.mark.spark
def test_window_features_equal_the_reference_definition(offline: OfflineData, spark: SparkSession) -> None:
    window = offline.manifests.window_for("account-realtime")
    assert window is not None
    tx = offline.transactions
    events = spark.read.parquet(str(offline.root / "raw" / "transactions.parquet"))
    rows: pd.DataFrame = compute_window_features(events, window.spec).toPandas()
    assert list(rows.columns) == [
        "account_id",
        "window",
        "window_start",
        "window_end",
        "window_end_ms",
        "txn_count",
        "amount_sum",
        "amount_max",
    ]
    reference = _reference_windows(tx, window.spec)
    got = {(r.account_id, r.window, r.window_end_ms): r for r in rows.itertuples(index=False)}
    assert got.keys() == reference.keys()
    for cell, values in reference.items():
        row = got[cell]
        assert row.txn_count == values["txn_count"]
        assert row.amount_max == values["amount_max"]
        assert row.amount_sum == pytest.approx(values["amount_sum"], rel=1e-12)
        assert row.window_end - row.window_start == timedelta(
            milliseconds=WindowShape.parse(
                *next((w.length, w.slide) for w in window.spec.windows if w.suffix == cell[1])
            ).length_ms
        )


@pytest.mark.spark
def test_window_offline_table_follows_the_time_rule(offline: OfflineData) -> None:
    """Read as Feast reads it (latest row at or before t), the table holds the window containing t over
    the events before t: the seconds just before t count, an event at exactly t does not."""
    window = offline.manifests.window_for("account-realtime")
    view = offline.manifests.feature_views["account-realtime"].spec
    assert window is not None and view.source is not None
    table = pd.read_parquet(view.source.path)
    tx = offline.transactions
    rng = np.random.default_rng(5)
    picks = tx.sample(n=60, random_state=9)
    offsets = [0, 1, *rng.integers(2, 400_000, size=len(picks) - 2)]  # at the event, 1 ms after it, later
    for account, ts, offset in zip(picks.account_id, picks.event_time, offsets, strict=True):
        at = ts.floor("ms") + pd.Timedelta(milliseconds=int(offset))
        rows = table[(table.account_id == account) & (table.event_timestamp <= at)]
        latest = rows.iloc[-1] if len(rows) else None
        mine = tx[tx.account_id == account]
        for w in window.spec.windows:
            shape = WindowShape.parse(w.length, w.slide)
            end_ms = shape.end_as_of(int(at.value // 1_000_000))
            start = pd.Timestamp(end_ms - shape.length_ms, unit="ms", tz="UTC")
            inside = mine[(mine.event_time.dt.floor("ms") >= start) & (mine.event_time.dt.floor("ms") < at)]
            if latest is None:  # no event of this account before t
                assert len(inside) == 0, (account, at, w.suffix)
                continue
            assert latest[f"txn_count_{w.suffix}"] == len(inside), (account, at, w.suffix)
            assert latest[f"amount_sum_{w.suffix}"] == pytest.approx(inside.amount.sum(), rel=1e-12)
            if len(inside):
                assert latest[f"amount_max_{w.suffix}"] == inside.amount.max()
            else:
                assert pd.isna(latest[f"amount_max_{w.suffix}"])
