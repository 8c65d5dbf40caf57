"""Bad input gives a DriftInputError naming the field; the exporter reports it and keeps its metrics."""

from pathlib import Path

import pandas as pd
import pytest

from streamguard.workloads.drift.errors import REASONS, DriftInputError
from streamguard.workloads.drift.exporter import Exporter, run_drift
from streamguard.workloads.drift.plan import plan

from .drift_data import MakeJob, customer_days, write


def _error(make_job: MakeJob, path: Path | str, **spec: object) -> DriftInputError:
    job = make_job(path, **spec)
    with pytest.raises(DriftInputError) as caught:
        run_drift(job, plan(job))
    assert caught.value.reason in REASONS
    return caught.value


def test_missing_reference_path(make_job: MakeJob, steady_parquet: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "reference.parquet"
    error = _error(make_job, steady_parquet, reference={"path": str(missing)})
    assert (error.reason, error.field) == ("ReferenceUnavailable", "spec.reference.path")
    assert str(missing) in error.message


def test_reference_that_is_not_parquet(make_job: MakeJob, steady_parquet: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    error = _error(make_job, steady_parquet, reference={"path": str(junk)})
    assert (error.reason, error.field) == ("ReferenceUnavailable", "spec.reference.path")


def test_empty_current_window(make_job: MakeJob, steady_parquet: Path) -> None:
    current = {"path": str(steady_parquet), "start": "2027-01-01T00:00:00Z"}
    error = _error(make_job, steady_parquet, current=current)
    assert (error.reason, error.field) == ("CurrentWindowEmpty", "spec.current")
    assert "start=2027-01-01" in error.message


def test_feature_missing_from_the_data(make_job: MakeJob, tmp_path: Path) -> None:
    path = write(customer_days().drop(columns=["amount_max_1d"]), tmp_path / "partial.parquet")
    error = _error(make_job, path)
    assert (error.reason, error.field) == ("FeatureMissing", "spec.features")
    assert "amount_max_1d" in error.message and "reference" in error.message


def test_feature_the_view_does_not_declare(make_job: MakeJob, steady_parquet: Path) -> None:
    error = _error(make_job, steady_parquet, features=["amount_sum_1d", "chargeback_rate"], ksFeatures=[])
    assert (error.reason, error.field) == ("FeatureUnknown", "spec.features")
    assert "chargeback_rate" in error.message and "customer-daily" in error.message


def test_timestamp_field_missing(make_job: MakeJob, steady_parquet: Path) -> None:
    current = {"path": str(steady_parquet), "timestampField": "created", "last": "3d"}
    error = _error(make_job, steady_parquet, current=current)
    assert (error.reason, error.field) == ("TimestampFieldMissing", "spec.current.timestampField")


def test_naive_timestamps_are_utc_and_bounds_are_half_open(make_job: MakeJob, tmp_path: Path) -> None:
    frame = customer_days()
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_localize(None)
    path = write(frame, tmp_path / "naive.parquet")
    job = make_job(path, current={"path": str(path), "start": "2026-02-01T12:00:00Z", "end": "2026-02-03T12:00:00Z"})
    result = run_drift(job, plan(job))
    assert result.current_rows == 2 * 400  # days 31 and 32 at noon; the end bound is exclusive
    assert pd.api.types.is_datetime64_any_dtype(frame["event_timestamp"])


def test_exporter_counts_a_failed_run_and_keeps_going(make_job: MakeJob, steady_parquet: Path, tmp_path: Path) -> None:
    job = make_job(steady_parquet, reference={"path": str(tmp_path / "missing.parquet")})
    exporter = Exporter.create(job, api=None)

    first = exporter.run_once()
    second = exporter.run_once()

    assert isinstance(first, DriftInputError) and isinstance(second, DriftInputError)
    value = exporter.metrics.registry.get_sample_value(
        "streamguard_drift_run_errors_total",
        {"view": "customer-daily", "monitor": "customer-drift", "reason": "ReferenceUnavailable"},
    )
    assert value == 2.0
    assert (
        exporter.metrics.registry.get_sample_value(
            "streamguard_drift_share", {"view": "customer-daily", "monitor": "customer-drift"}
        )
        is None
    )
