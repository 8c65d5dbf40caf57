"""Small synthetic FinServe-like customer features (daily rows) written as real Parquet."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from streamguard.api.featureview import FeatureViewSpec
from streamguard.jobspec import DriftJob

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 40
CUSTOMERS = 400
AMOUNT_FEATURES = ("amount_sum_1d", "amount_avg_1d", "amount_max_1d")
STEADY_FEATURES = ("txn_count_1d", "distinct_merchants_1d", "home_country")

MakeJob = Callable[..., DriftJob]

VIEW = FeatureViewSpec.model_validate(
    {
        "entities": [{"name": "customer", "joinKey": "customer_id"}],
        "features": [
            {"name": "txn_count_1d", "dtype": "INT64"},
            {"name": "amount_sum_1d", "dtype": "FLOAT64"},
            {"name": "amount_avg_1d", "dtype": "FLOAT64"},
            {"name": "amount_max_1d", "dtype": "FLOAT64"},
            {"name": "distinct_merchants_1d", "dtype": "INT64"},
            {"name": "home_country", "dtype": "STRING"},
        ],
        "source": {"path": "customers.parquet"},
    }
)


def customer_days(shift_last_days: int = 0, amount_factor: float = 1.0, seed: int = 7) -> pd.DataFrame:
    """One row per customer and day; amounts of the last ``shift_last_days`` days multiplied by ``amount_factor``."""
    rng = np.random.default_rng(seed)
    rows = CUSTOMERS * DAYS
    day = np.repeat(np.arange(DAYS), CUSTOMERS)
    count = rng.poisson(4, rows) + 1
    avg = rng.lognormal(3.5, 0.6, rows)
    factor = np.where(day >= DAYS - shift_last_days, amount_factor, 1.0)
    avg = avg * factor
    frame = pd.DataFrame(
        {
            "customer_id": np.tile([f"C{i:05d}" for i in range(CUSTOMERS)], DAYS),
            "event_timestamp": pd.to_datetime([START + timedelta(days=int(d), hours=12) for d in day]),
            "txn_count_1d": count.astype("int64"),
            "amount_sum_1d": avg * count,
            "amount_avg_1d": avg,
            "amount_max_1d": avg * rng.uniform(1.0, 2.0, rows),
            "distinct_merchants_1d": np.minimum(count, rng.poisson(3, rows) + 1).astype("int64"),
            "home_country": rng.choice(["US", "GB", "DE", "FR"], rows, p=[0.5, 0.2, 0.2, 0.1]),
        }
    )
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def monitor_spec(path: Path | str, **overrides: object) -> dict[str, object]:
    """A DriftMonitor spec (wire form): reference = the first 30 days, current = the last 3 days."""
    spec: dict[str, object] = {
        "featureView": "customer-daily",
        "ksFeatures": ["amount_avg_1d", "txn_count_1d"],
        "features": [*AMOUNT_FEATURES, *STEADY_FEATURES],
        "reference": {"path": str(path), "start": "2026-01-01T00:00:00Z", "end": "2026-01-31T00:00:00Z"},
        "current": {"path": str(path), "last": "3d"},
        "thresholds": {"psi": 0.25, "ksPValue": 0.05, "driftShare": 0.3},
        "interval": "2s",
    }
    spec.update(overrides)
    return spec
