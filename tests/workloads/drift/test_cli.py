"""``streamguard workload drift`` options that need no API server: ``--once --no-status`` and bad config."""

import json
from pathlib import Path

from click.testing import CliRunner

from streamguard.cli import main

from .drift_data import MakeJob


def test_once_prints_the_result_and_exits_zero(make_job: MakeJob, shifted_parquet: Path, tmp_path: Path) -> None:
    config = tmp_path / "job.json"
    config.write_text(make_job(shifted_parquet).model_dump_json(by_alias=True))

    result = CliRunner().invoke(main, ["workload", "drift", "--config", str(config), "--once", "--no-status"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert sorted(summary["driftedFeatures"]) == ["amount_avg_1d", "amount_max_1d", "amount_sum_1d"]
    assert summary["scores"]["amount_avg_1d"]["method"] == "ks"


def test_once_exits_one_on_bad_input(make_job: MakeJob, steady_parquet: Path, tmp_path: Path) -> None:
    config = tmp_path / "job.json"
    config.write_text(make_job(steady_parquet, current={"path": str(tmp_path / "none")}).model_dump_json())

    result = CliRunner().invoke(main, ["workload", "drift", "--config", str(config), "--once", "--no-status"])

    assert result.exit_code == 1
    assert '"reason": "CurrentUnavailable"' in result.output


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["workload", "drift", "--config", str(tmp_path / "job.json"), "--no-status"])

    assert result.exit_code == 1
    assert "is the ConfigMap mounted?" in result.output


def test_workload_help_lists_drift() -> None:
    result = CliRunner().invoke(main, ["workload", "--help"])
    assert result.exit_code == 0 and "drift" in result.output
