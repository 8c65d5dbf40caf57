"""The FinServe generator is deterministic and skewed; the manifests declare the 22 documented features."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from streamguard.api.durations import duration_seconds
from streamguard.demo.finserve_data import DEFAULT_OUT, FinServeConfig, generate, write
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests

SMALL = FinServeConfig(scale=0.05, days=14, seed=3)


def test_generator_is_deterministic_and_writes_parquet(tmp_path: Path) -> None:
    first, second = generate(SMALL), generate(SMALL)
    assert first.transactions.equals(second.transactions)
    assert not generate(FinServeConfig(scale=0.05, days=14, seed=4)).transactions.equals(first.transactions)
    paths = write(first, tmp_path)
    assert pq.read_table(paths["transactions"]).equals(first.transactions)
    assert {p.name for p in paths.values()} == {
        "customers.parquet",
        "accounts.parquet",
        "merchants.parquet",
        "transactions.parquet",
    }


def test_scale_one_shape_and_skew() -> None:
    config = FinServeConfig()
    data = generate(config)
    tx = data.transactions.to_pandas()
    assert (data.customers.num_rows, data.accounts.num_rows, data.merchants.num_rows) == (5000, 6000, 800)
    assert 300_000 <= len(tx) <= 1_000_000
    assert tx.event_time.min() >= config.start and tx.event_time.max() < config.end
    assert tx.event_time.is_monotonic_increasing and tx.transaction_id.is_unique
    assert (tx.event_time.dt.microsecond % 1000 == 0).all(), "millisecond event times"
    top10 = tx.merchant_id.value_counts().head(10).sum() / len(tx)
    assert top10 > 0.2, "a few hot merchants"
    assert 0.04 < tx.is_night.mean() < 0.15 and 0.02 < tx.is_foreign.mean() < 0.1
    fraud = tx[tx.is_fraud]
    assert 0.001 < tx.is_fraud.mean() < 0.02
    assert fraud.is_night.mean() > tx.is_night.mean() and fraud.is_foreign.mean() > tx.is_foreign.mean()
    bursts = fraud.groupby("account_id").event_time.agg(lambda t: (t.max() - t.min()).total_seconds())
    counts = fraud.account_id.value_counts()
    assert ((counts >= 5) & (bursts.reindex(counts.index) <= 600)).sum() >= 20, "fraud bursts within ten minutes"


def test_manifests_declare_22_documented_features() -> None:
    manifests = load_manifests(EXAMPLES_DIR)
    features = [f for v in manifests.feature_views.values() for f in v.spec.features]
    assert len(features) == 22 and len({f.name for f in features}) == 22
    assert {e.name for v in manifests.feature_views.values() for e in v.spec.entities} == {
        "customer",
        "account",
        "merchant",
    }
    window = manifests.window_for("account-realtime")
    assert window is not None
    assert window.spec.source.topic == "finserve.transactions" and window.spec.key_field == "account_id"
    shapes = {(w.length, w.slide) for w in window.spec.windows}
    assert shapes == {("1m", "15s"), ("5m", "1m"), ("1h", "5m")}
    windowed = window.spec.feature_names()
    assert len(windowed) >= 8
    assert windowed == [f.name for f in manifests.feature_views["account-realtime"].spec.features]
    contract = (EXAMPLES_DIR / "contracts" / "transaction-v1.avsc").read_text().strip()
    assert window.spec.contract.schema_.strip() == contract
    readme = (EXAMPLES_DIR / "README.md").read_text()
    for feature in features:
        line = next((ln for ln in readme.splitlines() if re.search(rf"`{feature.name}`", ln)), None)
        assert line is not None, f"{feature.name} is not documented in examples/finserve/README.md"
    for name, view in manifests.feature_views.items():
        assert view.spec.source is not None and view.spec.source.path.startswith(f"{DEFAULT_OUT}/offline/"), name
        assert duration_seconds(view.spec.freshness_sla) > 0
        start = view.spec.materialization.start
        assert start is None or start == datetime(2026, 8, 3, tzinfo=UTC)
