"""One drift run on real Parquet with real Evidently: shifted amounts drift, everything else does not."""

from pathlib import Path

import pytest

from streamguard.workloads.drift.analysis import DriftResult
from streamguard.workloads.drift.exporter import run_drift
from streamguard.workloads.drift.plan import plan

from .drift_data import AMOUNT_FEATURES, STEADY_FEATURES, MakeJob


def _run(make_job: MakeJob, path: Path) -> DriftResult:
    job = make_job(path)
    return run_drift(job, plan(job))


def test_shift_in_current_window_drifts_exactly_the_amount_features(make_job: MakeJob, shifted_parquet: Path) -> None:
    result = _run(make_job, shifted_parquet)

    assert set(result.drifted_features) == set(AMOUNT_FEATURES)
    by_feature = {s.feature: s for s in result.scores}
    assert by_feature["amount_sum_1d"].method == "psi" and by_feature["amount_sum_1d"].value >= 0.25
    assert by_feature["amount_avg_1d"].method == "ks" and by_feature["amount_avg_1d"].value < 0.05
    for name in STEADY_FEATURES:
        assert not by_feature[name].drifted, by_feature[name]
    assert result.drift_share == pytest.approx(0.5)
    assert result.dataset_drift
    assert result.reference_rows == 30 * 400  # 30 days of 400 customers
    assert result.current_rows == 3 * 400  # `last: 3d` of the newest row


def test_no_shift_keeps_drift_share_under_threshold(make_job: MakeJob, steady_parquet: Path) -> None:
    result = _run(make_job, steady_parquet)

    assert result.drift_share < 0.3
    assert result.drifted_features == ()
    assert not result.dataset_drift
    assert {s.feature for s in result.scores} == {*AMOUNT_FEATURES, *STEADY_FEATURES}


def test_default_features_are_the_numeric_features_of_the_view(make_job: MakeJob, steady_parquet: Path) -> None:
    job = make_job(steady_parquet, features=[], ksFeatures=[])
    drift_plan = plan(job)

    assert "home_country" not in drift_plan.features
    assert set(drift_plan.features) == {*AMOUNT_FEATURES, "txn_count_1d", "distinct_merchants_1d"}
    assert all(s.method == "psi" for s in run_drift(job, drift_plan).scores)
