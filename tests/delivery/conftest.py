"""Fixtures of the delivery tests: the real helm binary, the chart, prerequisite CRDs and the CLI."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from streamguard.cli import main
from streamguard.devstack.endpoints import Endpoints

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "streamguard"
DATA = Path(__file__).resolve().parent / "data"
SPINE = DATA / "spine"
VALUES_FILES = ("values.yaml", "values-dev.yaml", "values-staging.yaml", "values-prod.yaml")

Helm = Callable[..., subprocess.CompletedProcess[str]]
Cli = Callable[..., Result]


@pytest.fixture(scope="session")
def helm(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """``helm(*args, check=True)`` with the stack's kubeconfig and throwaway helm home folders."""
    binary = Path(stack.bin_dir) / "helm"
    assert binary.is_file(), f"helm is missing from the stack's bin dir {stack.bin_dir}"
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": f"{stack.bin_dir}:/usr/bin:/bin",
        "KUBECONFIG": stack.kubeconfig,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, check=False,
                                timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def chart_crds(kubectl: Callable[..., subprocess.CompletedProcess[str]], crds: None) -> None:
    """Every CRD the chart ships (StreamGuard's and kopf's peering) installed and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CHART / "crds"))


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
