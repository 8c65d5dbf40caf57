"""The feature-validation workflow: actionlint (built from the Go module proxy) and what it runs."""

import subprocess
from typing import Any

import yaml

from streamguard.devstack.provision import ensure
from tests.delivery.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "feature-validation.yml"


def actionlint() -> str:
    """actionlint from the cache (built from the Go module proxy by provisioning on first use)."""
    return str(ensure(["actionlint"])["actionlint"].ready)


def test_actionlint_passes() -> None:
    result = subprocess.run([actionlint(), "-color=false", str(WORKFLOW)], capture_output=True, text=True,
                            check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Any) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs-on: ${{ matrix.os }}", 1))
    result = subprocess.run([actionlint(), "-color=false", str(broken)], capture_output=True, text=True,
                            check=False, cwd=tmp_path)
    assert result.returncode == 1
    assert "matrix" in result.stdout


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_runs_lint_tests_and_plan_on_pull_requests() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    commands = "\n".join(step.get("run", "") for step in steps(workflow))
    for expected in ("ruff check .", "mypy", "pytest", "streamguard dev up"):
        assert expected in commands
    plan = next(step["run"] for step in steps(workflow) if "streamguard plan" in step.get("run", ""))
    assert "streamguard plan examples/finserve" in plan
    assert '--format markdown >> "$GITHUB_STEP_SUMMARY"' in plan
    assert "origin/${GITHUB_BASE_REF}" in plan
