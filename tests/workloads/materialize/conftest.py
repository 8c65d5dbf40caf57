"""Session fixtures of the offline tests: a small FinServe data set, its offline tables (real Spark),
manifests pointing at them and a unique Feast project per test."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pyspark.sql import SparkSession

from streamguard.demo.finserve_data import FinServeConfig, generate, write
from streamguard.finserve.resources import EXAMPLES_DIR, Manifests, load_manifests

SMALL = FinServeConfig(scale=0.04, days=10, seed=11)
"""200 customers, 240 accounts, 32 merchants, ~2,500 transactions over 10 days."""


@dataclass(frozen=True)
class OfflineData:
    root: Path
    manifests_dir: Path
    manifests: Manifests
    transactions: pd.DataFrame


def rewrite_manifests(source: Path, target: Path, data_root: Path) -> Path:
    """The example manifests with their source paths moved under ``data_root``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.yaml"):
        (target / path.name).write_text(path.read_text().replace(".run/data/finserve", str(data_root)))
    return target


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from streamguard.workloads.batch.session import local_session

    session = local_session("streamguard-offline-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("finserve")
    write(generate(SMALL), root)
    return root


@pytest.fixture(scope="session")
def offline(raw_data: Path, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> OfflineData:
    """The raw data plus every offline table, computed by the batch job."""
    from streamguard.workloads.batch.job import run

    manifests_dir = rewrite_manifests(EXAMPLES_DIR, tmp_path_factory.mktemp("manifests"), raw_data)
    manifests = load_manifests(manifests_dir)
    run(spark, raw_data / "raw" / "transactions.parquet", manifests)
    transactions = pd.read_parquet(raw_data / "raw" / "transactions.parquet")
    return OfflineData(raw_data, manifests_dir, manifests, transactions)


@pytest.fixture
def project() -> str:
    """A Feast project name no other test uses (it suffixes every Redis key)."""
    return f"t{uuid.uuid4().hex[:10]}"


def yaml_docs(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
