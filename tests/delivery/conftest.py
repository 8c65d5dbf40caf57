"""Fixtures of the delivery tests: the chart and the CLI (the helm binary and the chart's CRDs are session
fixtures of tests/conftest.py: the node tests install the chart too)."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streamguard.cli import main
from tests.conftest import CHART as CHART
from tests.conftest import Helm as Helm

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SPINE = DATA / "spine"
VALUES_FILES = ("values.yaml", "values-dev.yaml", "values-staging.yaml", "values-prod.yaml")

Cli = Callable[..., Result]


@pytest.fixture
def cli() -> Cli:
    """``cli(*args, env={...})``: run the ``streamguard`` CLI in-process and return click's Result."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return run


@pytest.fixture
def spine_copy(tmp_path: Path) -> Path:
    """A scratch copy of the small example folder, to edit."""
    target = tmp_path / "spine"
    shutil.copytree(SPINE, target)
    return target
