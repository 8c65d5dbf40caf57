"""Fixtures of the drift tests: real Parquet files of synthetic FinServe-like customer features."""

from pathlib import Path

import pytest

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.jobspec import DriftJob

from .drift_data import VIEW, MakeJob, customer_days, monitor_spec, write


@pytest.fixture(scope="session")
def shifted_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Amounts of the last 3 days (the current window) multiplied by 1.6; everything else unchanged."""
    return write(
        customer_days(shift_last_days=3, amount_factor=1.6), tmp_path_factory.mktemp("drift") / "shift.parquet"
    )


@pytest.fixture(scope="session")
def steady_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(customer_days(), tmp_path_factory.mktemp("drift") / "steady.parquet")


@pytest.fixture
def make_job() -> MakeJob:
    def make(path: Path | str, name: str = "customer-drift", namespace: str = "default", **spec: object) -> DriftJob:
        return DriftJob(
            namespace=namespace,
            name=name,
            monitor=DriftMonitorSpec.model_validate(monitor_spec(path, **spec)),
            view_name="customer-daily",
            view=VIEW,
        )

    return make
