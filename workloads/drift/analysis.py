"""Run Evidently on two frames and read its snapshot into a ``DriftResult``.

Results are read from each metric's ``config`` (type, column, method, threshold), never by parsing
``metric_name``. Drift decisions follow Evidently: PSI drifts at or above its threshold, a KS p-value
drifts below its threshold. The drift share covers every watched feature (PSI and KS alike).
"""

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset

from streamguard.workloads.drift.errors import DriftInputError
from streamguard.workloads.drift.plan import DriftPlan

VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


@dataclass(frozen=True)
class FeatureScore:
    feature: str
    method: str
    """``psi`` or ``ks``."""
    value: float
    """The PSI, or the KS p-value."""
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    scores: tuple[FeatureScore, ...]
    reference_rows: int
    current_rows: int
    drift_share_threshold: float
    drifted_features: tuple[str, ...] = field(init=False)
    drift_share: float = field(init=False)

    def __post_init__(self) -> None:
        drifted = tuple(s.feature for s in self.scores if s.drifted)
        object.__setattr__(self, "drifted_features", drifted)
        object.__setattr__(self, "drift_share", len(drifted) / len(self.scores) if self.scores else 0.0)

    @property
    def dataset_drift(self) -> bool:
        return self.drift_share >= self.drift_share_threshold


def build_report(plan: DriftPlan) -> Report:
    metrics: list[Any] = []
    if plan.psi_features:
        metrics.append(
            DataDriftPreset(
                columns=list(plan.psi_features),
                method="psi",
                threshold=plan.psi_threshold,
                drift_share=plan.drift_share,
            )
        )
    metrics += [ValueDrift(column=f, method="ks", threshold=plan.ks_p_value) for f in plan.ks_features]
    return Report(metrics)


def is_drifted(method: str, value: float, threshold: float) -> bool:
    """Evidently's rule: a p-value test drifts below its threshold, a distance at or above it."""
    return value < threshold if method == "ks" else value >= threshold


def read_snapshot(snapshot: dict[str, Any], plan: DriftPlan) -> tuple[FeatureScore, ...]:
    """Per-feature scores from ``Snapshot.dict()``, in the plan's feature order."""
    wanted = {(f, "psi") for f in plan.psi_features} | {(f, "ks") for f in plan.ks_features}
    found: dict[str, FeatureScore] = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type") != VALUE_DRIFT:
            continue
        key = (config["column"], config["method"])
        if key not in wanted:
            continue
        value = float(metric["value"])
        threshold = float(config["threshold"])
        found[key[0]] = FeatureScore(key[0], key[1], value, threshold, is_drifted(key[1], value, threshold))
    absent = [f for f in plan.features if f not in found]
    if absent:
        raise DriftInputError(
            "EvidentlyFailed", "spec.features", f"Evidently returned no score for {', '.join(absent)}"
        )
    return tuple(found[f] for f in plan.features)


def _frame(data: pd.DataFrame, plan: DriftPlan, role: str) -> pd.DataFrame:
    empty = [c for c in plan.features if data[c].isna().all()]
    if empty:
        raise DriftInputError("FeatureEmpty", "spec.features", f"{', '.join(empty)} only null in the {role} data")
    return data[list(plan.features)]


def analyse(reference: pd.DataFrame, current: pd.DataFrame, plan: DriftPlan) -> DriftResult:
    """One Evidently run over the watched features of both slices."""
    definition = DataDefinition(numerical_columns=list(plan.numerical), categorical_columns=list(plan.categorical))
    ref = Dataset.from_pandas(_frame(reference, plan, "reference"), data_definition=definition)
    cur = Dataset.from_pandas(_frame(current, plan, "current"), data_definition=definition)
    try:
        snapshot = build_report(plan).run(cur, ref)
    except (ValueError, TypeError, KeyError) as error:
        raise DriftInputError(
            "EvidentlyFailed", "spec.features", f"Evidently could not compare the data: {error}"
        ) from None
    return DriftResult(
        scores=read_snapshot(snapshot.dict(), plan),
        reference_rows=len(reference),
        current_rows=len(current),
        drift_share_threshold=plan.drift_share,
    )
