"""Pins the shape of Evidently 0.7's snapshot that ``analysis.read_snapshot`` relies on."""

from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset


def test_evidently_version_is_pinned_minor() -> None:
    assert version("evidently").startswith("0.7.")


def test_snapshot_shape_psi_preset_and_ks_value_drift() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"amount": rng.normal(50, 10, 800), "country": rng.choice(["US", "GB"], 800)})
    current = pd.DataFrame({"amount": rng.normal(80, 10, 400), "country": rng.choice(["US", "GB"], 400)})
    definition = DataDefinition(numerical_columns=["amount"], categorical_columns=["country"])
    report = Report(
        [
            DataDriftPreset(columns=["amount", "country"], method="psi", threshold=0.25, drift_share=0.3),
            ValueDrift(column="amount", method="ks", threshold=0.05),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    ).dict()

    metrics = snapshot["metrics"]
    assert all(set(m) >= {"id", "metric_name", "config", "value"} for m in metrics)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for metric in metrics:
        by_type.setdefault(metric["config"]["type"], []).append(metric)

    (count,) = by_type["evidently:metric_v2:DriftedColumnsCount"]
    assert count["config"]["drift_share"] == 0.3
    assert count["value"] == {"count": 1.0, "share": 0.5}

    drifts = {(m["config"]["column"], m["config"]["method"]): m for m in by_type["evidently:metric_v2:ValueDrift"]}
    assert set(drifts) == {("amount", "psi"), ("country", "psi"), ("amount", "ks")}
    assert drifts[("amount", "psi")]["config"]["threshold"] == 0.25
    assert drifts[("amount", "ks")]["config"]["threshold"] == 0.05
    assert isinstance(drifts[("amount", "psi")]["value"], float)
    assert drifts[("amount", "psi")]["value"] >= 0.25  # PSI: drift at or above the threshold
    assert drifts[("amount", "ks")]["value"] < 0.05  # KS: a p-value, drift below the threshold
    assert drifts[("country", "psi")]["value"] < 0.25
