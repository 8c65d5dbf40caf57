"""``streamguard plan`` runs the real ``feast plan`` on the Feast repository the FeatureViews generate."""

from pathlib import Path

import yaml

from tests.delivery.conftest import Cli
from tests.delivery.test_plan import OFFLINE, load, save


def test_feast_plan_lists_the_generated_objects(cli: Cli, spine_copy: Path) -> None:
    views = load(spine_copy / "views.yaml")
    views[0]["spec"]["source"] = {"path": "offline/card_activity"}
    save(spine_copy / "views.yaml", views)
    result = cli("plan", str(spine_copy), "--empty", "--no-base", env=OFFLINE)
    assert result.exit_code == 0, result.output
    assert "feast plan: ok" in result.output
    assert "Created entity card" in result.output
    assert "Created feature view card-activity" in result.output


def test_feast_plan_failure_fails_the_plan(cli: Cli, spine_copy: Path) -> None:
    """Two views joining the same entity on different keys: valid one by one, refused by Feast."""
    views = load(spine_copy / "views.yaml")
    other = yaml.safe_load(yaml.safe_dump(views[0]))
    other["metadata"]["name"] = "card-risk"
    other["spec"]["entities"][0]["joinKey"] = "card_number"
    other["spec"]["features"] = [{"name": "risk_score", "dtype": "FLOAT64"}]
    save(spine_copy / "views.yaml", [*views, other])
    result = cli("plan", str(spine_copy), "--empty", "--no-base", env=OFFLINE)
    assert result.exit_code == 1, result.output
    assert "feast plan: FAILED" in result.output
    assert "card_number" in result.output
